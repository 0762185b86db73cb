"""The result model: headline figures (KPIs), report tables, and the specs of result layers.

Every analysis returns its figures as :class:`Kpi` and its tables as :class:`ReportTable`, and
gives each output layer the columns and types of its spec in ``layers/results/``
(:func:`conform`), so the GeoPackage, the Excel sheets, the report and the maps (all in
:mod:`geo_mz.outputs`) read titles, units and symbology from one place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo_mz.core.catalog import LayerSpec, default_catalog_dir, load_catalog
from geo_mz.core.display import format_value
from geo_mz.core.errors import GeoMzError, LayerValidationError, Problem
from geo_mz.core.projection import measure_crs_for
from geo_mz.core.validate import check_layer

Lang = Literal["zh", "en"]
STORAGE_CRS = "EPSG:4490"


def unique_kpis(kpis: Sequence[Kpi]) -> list[Kpi]:
    """Keep the first of figures that share an English label (analyses can overlap)."""
    seen: set[str] = set()
    out = []
    for k in kpis:
        if k.label_en not in seen:
            seen.add(k.label_en)
            out.append(k)
    return out


@dataclass(frozen=True)
class ReportTable:
    """A table of results shown in the report (e.g. coverage per town).

    Attributes
    ----------
    title_zh, title_en
        Heading in Chinese and English.
    columns
        Column headings, already in the display language(s).
    rows
        Cell texts, already formatted (units, percentages); escaped when rendered.
    note
        A line under the table (method, source, what is left out).
    """

    title_zh: str
    title_en: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    note: str = ""


@dataclass(frozen=True)
class LayerCheck:
    """The validation outcome of one layer.

    Attributes
    ----------
    layer
        Catalog name of the layer, e.g. ``"elder_care"``.
    file
        The source file or workspace table that was checked.
    rows
        Number of features checked.
    problems
        Every finding: errors, warnings and notices.
    """

    layer: str
    file: str
    rows: int
    problems: tuple[Problem, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.problems, tuple):
            object.__setattr__(self, "problems", tuple(self.problems))

    def _count(self, severity: str) -> int:
        return sum(1 for p in self.problems if p.severity == severity)

    @property
    def errors(self) -> int:
        """Number of problems with severity ``"error"``."""
        return self._count("error")

    @property
    def warnings(self) -> int:
        """Number of problems with severity ``"warning"``."""
        return self._count("warning")

    @property
    def notices(self) -> int:
        """Number of problems with severity ``"notice"``."""
        return self._count("notice")

    @property
    def ok(self) -> bool:
        """True when the layer has no errors (warnings and notices do not block)."""
        return self.errors == 0


@dataclass(frozen=True)
class Kpi:
    """One planning indicator, e.g. the share of elderly within 15 minutes of a centre.

    Attributes
    ----------
    label_zh, label_en
        What is measured, in Chinese and English.
    value
        The measured value.
    unit
        Unit shown after the value (``"%"``, ``"张/千人"``...).
    target
        The target as text, e.g. ``"≥ 40"``; empty when there is none.
    met
        Whether the target is met; None when there is no target.
    source
        The standard or plan the target comes from.
    """

    label_zh: str
    label_en: str
    value: float | int | str
    unit: str = ""
    target: str = ""
    met: bool | None = None
    source: str = ""

    def label(self, lang: Lang = "zh") -> str:
        """Label in ``lang``."""
        return self.label_zh if lang == "zh" else self.label_en


def result_catalog() -> dict[str, LayerSpec]:
    """Specs of the analysis output layers (``layers/results/``)."""
    return load_catalog(default_catalog_dir() / "results")


def conform(kind: str, gdf: gpd.GeoDataFrame, specs: Mapping[str, LayerSpec]) -> gpd.GeoDataFrame:
    """Give an output layer its spec's columns and types; any error here is a bug, not input."""
    spec = specs[kind]
    cols = [f.name for f in spec.fields if f.name in gdf.columns]
    g = gpd.GeoDataFrame(gdf[cols], geometry=gdf.geometry.values, crs=gdf.crs)
    g = to_storage_crs(g, kind)
    num = g.select_dtypes("number").columns
    g[num] = g[num].replace([np.inf, -np.inf], np.nan)
    out, problems = check_layer(g, spec, file=kind, area=None)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise LayerValidationError(errors)
    return out


def to_storage_crs(gdf: gpd.GeoDataFrame, what: str) -> gpd.GeoDataFrame:
    """Reproject an output layer to the storage CRS, repairing what the projection broke.

    Reprojecting valid metric polygons to degrees can fold near-coincident vertices into
    tiny self-intersections; those are repaired (``make_valid``, ``method="structure"``,
    which rebuilds rings as area, where linework can turn a fold into a hole), but only if
    the area stays the same.

    Parameters
    ----------
    gdf
        The layer, in any CRS.
    what
        The layer's name, for the error.

    Returns
    -------
    geopandas.GeoDataFrame
        The layer in EPSG:4490, its invalid polygons repaired.

    Raises
    ------
    GeoMzError
        When a repair would change an area (a bug, not the user's input).
    """
    g = gdf.to_crs(STORAGE_CRS)
    bad = ~g.is_valid.to_numpy()
    if bad.any():
        repaired = shapely.make_valid(
            g.geometry.values[bad], method="structure", keep_collapsed=False
        )
        fixed = gpd.GeoSeries(repaired, crs=STORAGE_CRS).apply(_polygonal)
        metric = measure_crs_for(g)
        before = g.geometry[bad].to_crs(metric).area.to_numpy()
        after = fixed.to_crs(metric).area.to_numpy()
        if np.any(np.abs(after - before) > 1e-6 * np.maximum(before, 1.0) + 1.0):
            raise GeoMzError(f"{what}: invalid output geometry could not be repaired losslessly")
        g.loc[bad, g.geometry.name] = fixed.to_numpy()
    return g


def _polygonal(geom: shapely.Geometry) -> shapely.Geometry:
    parts = [
        p for p in getattr(geom, "geoms", [geom]) if p.geom_type in ("Polygon", "MultiPolygon")
    ]
    return shapely.union_all(parts) if parts else geom


def display_table(
    df: pd.DataFrame, spec: LayerSpec, lang: Lang, columns: Sequence[str]
) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
    """Column headings ("中文 English") and formatted rows of ``columns`` for a report table."""
    heads, fields = [], []
    for c in columns:
        f = spec.field(c)
        heads.append(f"{f.title_zh} {f.title_en}" if lang == "zh" else f"{f.title_en} {f.title_zh}")
        fields.append(f)
    rows = tuple(
        tuple(format_value(r[c], f, lang) for c, f in zip(columns, fields, strict=True))
        for r in df.to_dict("records")
    )
    return tuple(heads), rows


def headed(df: pd.DataFrame, spec: LayerSpec) -> pd.DataFrame:
    """Rename a table's columns to their spec titles, "中文 English", for Excel sheets."""
    names = {f.name: f"{f.title_zh} {f.title_en}" for f in spec.fields}
    return df.rename(columns=lambda c: names.get(c, c))


def kpi_frame(kpis: Sequence[Kpi]) -> pd.DataFrame:
    """Headline figures as a table (one row per KPI), for an Excel sheet."""
    return pd.DataFrame(
        [
            {
                "指标 indicator": f"{k.label_zh} {k.label_en}",
                "值 value": k.value,
                "单位 unit": k.unit,
                "目标 target": k.target,
                "达标 met": k.met,
                "依据 source": k.source,
            }
            for k in kpis
        ]
    )


__all__ = [
    "Kpi",
    "LayerCheck",
    "ReportTable",
    "conform",
    "display_table",
    "headed",
    "kpi_frame",
    "result_catalog",
    "to_storage_crs",
    "unique_kpis",
]

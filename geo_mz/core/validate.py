"""Check a layer against its catalog spec and report every problem at once.

Each finding names the file, the row (1-based, in file order), the feature id and the field. The
checks: missing CRS, unknown/legacy CRS, wrong geometry type, empty or invalid geometry (repaired
with ``make_valid`` only when asked, and then reported), coordinates outside the expected area,
missing required fields and values, wrong types, values outside the allowed set or range,
duplicate ids, non-UTF-8 text, and the standards' warning thresholds named in the spec.

Columns are matched to fields by name, title or the spec's ``aliases``, and enumerated values by
code, label or the value's ``aliases``, ignoring case, width (全角) and white space; every such
reading is reported as a notice. Before the checks, :func:`prepare_layer` can fill absent fields
(:mod:`geo_mz.core.defaults`), keep only the rows inside a district (:mod:`geo_mz.core.clip`) and
compare the points with a reference layer for a GCJ-02/BD-09 mix-up (:mod:`geo_mz.core.datum`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from geo_mz.core.catalog import FieldSpec, LayerSpec, get_spec, text_key
from geo_mz.core.clip import District, clip_rows, source_coordinates
from geo_mz.core.datum import DatumCheck, check_datum, declared_reading
from geo_mz.core.defaults import apply_defaults, fill_notices
from geo_mz.core.errors import CrsError, LayerValidationError, Problem
from geo_mz.core.field_values import coerce_value, is_null, typed_column
from geo_mz.core.io import read_source
from geo_mz.core.projection import (
    CHINA_DATUMS,
    LEGACY_DATUMS,
    STORAGE_CRS,
    china_datum_to_wgs84,
    parse_crs,
)

#: Longitude/latitude box that holds all of China's territory, with a small margin.
CHINA_BOUNDS = (73.0, 3.0, 136.0, 54.0)

_RESERVED_COLUMNS = {"fid", "geom", "geometry", "ogc_fid"}
_GEOM_FAMILY = {
    "Point": ("Point", "MultiPoint"),
    "LineString": ("LineString", "MultiLineString"),
    "Polygon": ("Polygon", "MultiPolygon"),
}


@dataclass
class LayerResult:
    """A layer after reading and checking: the clean features and every finding.

    Attributes
    ----------
    kind
        Catalog layer name.
    file
        Source file as given.
    gdf
        Features in the storage CRS (EPSG:4490) with spec dtypes; rows with errors included.
    problems
        Errors, warnings and notices, in file order.
    source_crs
        The CRS (or China datum) the coordinates were read in.
    clipped
        With a clip: the rows left out because they lie outside the district (``row``, ``id``,
        ``lon``, ``lat`` as in the file, ``distance_km``); None without a clip.
    district
        With a clip: which area the rows were clipped to (Chinese / English).
    datum
        The datum check against the reference layer, when it applied.
    rows
        The 1-based file row of each feature of ``gdf`` (rows left out by a clip and blank rows
        of a sheet keep their numbers); None: ``1..n``.
    """

    kind: str
    file: str
    gdf: gpd.GeoDataFrame
    problems: list[Problem] = field(default_factory=list)
    source_crs: str | None = None
    clipped: pd.DataFrame | None = None
    district: str | None = None
    datum: DatumCheck | None = None
    rows: list[int] | None = None

    @property
    def errors(self) -> list[Problem]:
        """Findings that block an import."""
        return [p for p in self.problems if p.severity == "error"]

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings and notices allowed)."""
        return not self.errors

    def raise_for_errors(self) -> None:
        """Raise :class:`LayerValidationError` with all problems when there is any error."""
        if not self.ok:
            raise LayerValidationError(self.problems)


def _ids(gdf: pd.DataFrame, spec: LayerSpec) -> list[str | None]:
    if spec.id_field not in gdf.columns:
        return [None] * len(gdf)
    return [None if is_null(v) else str(v) for v in gdf[spec.id_field].tolist()]


def _rename_columns(
    df: pd.DataFrame, spec: LayerSpec, file: str
) -> tuple[pd.DataFrame, dict[str, str], list[Problem]]:
    """Match columns to fields by name, title or alias (see :meth:`LayerSpec.match_header`)."""
    problems: list[Problem] = []
    renames: dict[str, str] = {}
    present = set(df.columns)
    for col in df.columns:
        if col == "geometry" or col in spec.field_names:
            continue
        target = spec.match_header(str(col))
        if target and target not in present and target not in renames.values():
            renames[col] = target
            problems.append(
                Problem(
                    file,
                    None,
                    None,
                    target,
                    "renamed_field",
                    f"列 '{col}' 读作字段 '{target}' / column '{col}' read as field '{target}'",
                    "notice",
                )
            )
    return df.rename(columns=renames), renames, problems


@dataclass
class _Findings:
    """Collects problems of one file; rows are given 0-based and reported as file rows."""

    file: str
    ids: list[str | None]
    items: list[Problem] = field(default_factory=list)
    rows: Sequence[int] | None = None
    layer: str = ""

    def row(self, i: int) -> int:
        """Return the 1-based file row of the ``i``-th feature."""
        return int(self.rows[i]) if self.rows is not None else int(i) + 1

    def add(
        self, i: int | None, name: str | None, code: str, message: str, severity: str = "error"
    ) -> None:
        row = None if i is None else self.row(i)
        fid = self.ids[i] if i is not None and i < len(self.ids) else None
        self.items.append(Problem(self.file, row, fid, name, code, message, severity))


def _check_fields(df: pd.DataFrame, spec: LayerSpec, found: _Findings) -> dict[str, pd.Series]:
    out: dict[str, pd.Series] = {}
    absent_optional = []
    columns = [c for c in df.columns if c != "geometry"]
    for f in spec.fields:
        if f.name in df.columns:
            out[f.name] = _check_field(df[f.name].tolist(), f, found)
            continue
        if f.required:
            found.add(
                None,
                f.name,
                "missing_field",
                f"必填字段 '{f.name}'（{f.title_zh}）不在文件中；可用 --default {f.name}=值 补上 / "
                f"required field '{f.name}' ({f.title_zh}) is not in the file; columns are "
                f"{columns}; supply it with --default {f.name}=VALUE (defaults= in Python)",
            )
        else:
            absent_optional.append(f.name)
        out[f.name] = typed_column([None] * len(df), f.type)
    if absent_optional:
        found.add(
            None,
            None,
            "absent_optional_fields",
            f"文件中没有这些可选字段，留空 / optional fields not in the file, left empty: "
            f"{absent_optional}",
            "notice",
        )
    for f in spec.fields:
        if f.max_field is not None and f.name in df.columns and f.max_field in df.columns:
            a, b = out[f.name], out[f.max_field]
            for i in np.flatnonzero((a > b).fillna(False).to_numpy(dtype=bool)):
                found.add(
                    i,
                    f.name,
                    "exceeds_field",
                    f"{f.name}={a.iloc[i]} is greater than {f.max_field}={b.iloc[i]}",
                )
    return out


def _check_value(
    x: Any, i: int, f: FieldSpec, pattern: re.Pattern[str] | None, found: _Findings
) -> None:
    """Check one coerced value without changing it: pattern, range, thresholds, text."""
    unit = f" {f.unit}" if f.unit else ""
    if pattern is not None and not pattern.fullmatch(x):
        found.add(i, f.name, "bad_pattern", f"{x!r} does not match the pattern {f.pattern}")
    if isinstance(x, int | float):
        if f.min is not None and x < f.min:
            found.add(i, f.name, "out_of_range", f"{x} is below the minimum {f.min}{unit}")
        if f.max is not None and x > f.max:
            found.add(i, f.name, "out_of_range", f"{x} is above the maximum {f.max}{unit}")
        for t, below, code in (
            (f.warn_min, True, "below_standard"),
            (f.warn_max, False, "above_standard"),
        ):
            if t is not None and (x < t.value if below else x > t.value):
                found.add(i, f.name, code, f"{x}{unit}: {t.zh} / {t.en} [{t.source}]", "warning")
    if isinstance(x, str) and ("\ufffd" in x or re.search("[\udc80-\udcff]", x)):
        found.add(
            i,
            f.name,
            "non_utf8",
            "text holds undecodable bytes (shown as \ufffd); re-save as UTF-8",
        )


def _check_field(values: list[Any], f: FieldSpec, found: _Findings) -> pd.Series:
    lookup = f.lookup() if f.values else None
    codes = [v.code for v in f.values]
    shown = codes if len(codes) <= 12 else [*codes[:12], "..."]
    pattern = re.compile(f.pattern) if f.pattern else None
    normalised: dict[str, str] = {}
    clean: list[Any] = []
    for i, v in enumerate(values):
        clean.append(None)
        if is_null(v):
            if f.required:
                found.add(
                    i,
                    f.name,
                    "missing_required",
                    f"required value of '{f.name}' ({f.title_zh}) is empty",
                )
            continue
        try:
            x = coerce_value(v, f.type)
        except (ValueError, TypeError, OverflowError) as exc:
            found.add(i, f.name, "wrong_type", f"{v!r} is not a valid {f.type} ({exc})")
            continue
        if lookup is not None:
            code = lookup.get(text_key(x))
            if code is None:
                found.add(
                    i,
                    f.name,
                    "not_allowed",
                    f"{x!r} 不是允许的值，应为 {shown}（或其中文/英文名称、别名）/ {x!r} is not an "
                    f"allowed value; expected one of {shown} (or their Chinese/English labels "
                    f"or aliases; see geo-mz catalog {found.layer})",
                )
                continue
            if code != x:
                normalised.setdefault(x, code)
            x = code
        _check_value(x, i, f, pattern, found)
        clean[-1] = x
    if normalised:
        # every distinct spelling read, once (their number is bounded by the spec's spellings)
        mapped = ", ".join(f"{k}→{v}" for k, v in normalised.items())
        found.add(
            None,
            f.name,
            "normalised_labels",
            f"按代码存储 / labels stored as their codes: {mapped}",
            "notice",
        )
    return typed_column(clean, f.type)


def _one_geometry(g: Any, i: int, spec: LayerSpec, repair: bool, found: _Findings) -> Any:
    """Return the geometry to store for row ``i`` (None when it is an error)."""
    allowed = _GEOM_FAMILY[spec.geometry]
    if g is None or shapely.is_missing(g) or g.is_empty:
        found.add(i, "geometry", "empty_geometry", "geometry is missing or empty")
        return None
    gtype = g.geom_type
    if gtype not in allowed:
        found.add(
            i,
            "geometry",
            "wrong_geometry_type",
            f"geometry is {gtype}; layer '{spec.name}' expects {spec.geometry}",
        )
        return None
    if gtype.startswith("Multi") and spec.geometry != "Polygon":
        if len(g.geoms) != 1:
            found.add(
                i,
                "geometry",
                "wrong_geometry_type",
                f"{gtype} with {len(g.geoms)} parts; layer '{spec.name}' expects one "
                f"{spec.geometry} per feature (split it first)",
            )
            return None
        g = g.geoms[0]
    if not g.is_valid:
        reason = shapely.is_valid_reason(g)
        if not repair:
            found.add(
                i,
                "geometry",
                "invalid_geometry",
                f"invalid geometry: {reason} (repair with --repair / repair=True)",
            )
            return None
        # Polygons: GEOS "structure" keeps every piece a ring encloses (a fold over a neighbour
        # stays an overlap the boundary QA can report); the default "linework" drops pieces
        # wound twice and fills pockets a ring closes off (neighbours' land).
        fixed = (
            shapely.make_valid(g, method="structure", keep_collapsed=False)
            if spec.geometry == "Polygon"
            else shapely.make_valid(g)
        )
        if spec.geometry == "Polygon":
            parts = [p for p in getattr(fixed, "geoms", [fixed]) if p.geom_type in allowed]
            fixed = shapely.union_all(parts) if parts else None
        if fixed is None or fixed.is_empty or fixed.geom_type not in allowed:
            found.add(
                i,
                "geometry",
                "invalid_geometry",
                f"invalid geometry ({reason}) and make_valid could not repair it",
            )
            return None
        found.add(
            i, "geometry", "repaired_geometry", f"repaired with make_valid: {reason}", "warning"
        )
        g = fixed
    if spec.geometry == "Polygon" and g.geom_type == "Polygon":
        g = shapely.MultiPolygon([g])
    return g


def _check_geometry(
    gs: gpd.GeoSeries,
    spec: LayerSpec,
    found: _Findings,
    *,
    repair: bool,
    area: tuple[float, float, float, float] | None,
    crs_known: bool,
) -> np.ndarray:
    geoms = np.asarray(gs.values, dtype=object).copy()
    if shapely.has_z(geoms[~shapely.is_missing(geoms)]).any():
        geoms = shapely.force_2d(geoms)
        found.add(
            None, "geometry", "dropped_z", "Z coordinates dropped (layers are stored 2D)", "notice"
        )
    for i, g in enumerate(geoms):
        geoms[i] = _one_geometry(g, i, spec, repair, found)
    if crs_known and area is not None:
        minx, miny, maxx, maxy = area
        present = ~shapely.is_missing(geoms)
        b = np.full((len(geoms), 4), np.nan)
        b[present] = shapely.bounds(geoms[present])
        outside = present & (
            (b[:, 0] < minx) | (b[:, 2] > maxx) | (b[:, 1] < miny) | (b[:, 3] > maxy)
        )
        for i in np.flatnonzero(outside):
            x, y = b[i, 0], b[i, 1]
            hint = ""
            if minx <= y <= maxx and miny <= x <= maxy:
                hint = "; longitude and latitude look swapped"
            elif abs(x) > 180 or abs(y) > 90:
                hint = "; these look like projected metres: is the file's CRS right?"
            found.add(
                i,
                "geometry",
                "outside_area",
                f"coordinates ({x:.6f}, {y:.6f}) are outside the expected area "
                f"[{minx}, {miny}, {maxx}, {maxy}]{hint}",
            )
    return geoms


def check_layer(
    gdf: gpd.GeoDataFrame,
    spec: LayerSpec,
    *,
    file: str = "<memory>",
    repair: bool = False,
    area: tuple[float, float, float, float] | None = CHINA_BOUNDS,
    row_numbers: Sequence[int] | None = None,
) -> tuple[gpd.GeoDataFrame, list[Problem]]:
    """Check features already in the storage CRS against a spec.

    Parameters
    ----------
    gdf
        Features in EPSG:4490 or EPSG:4326 (or without CRS, reported as an error).
    spec
        The layer spec.
    file
        Name used in messages.
    repair
        Repair invalid geometries with ``shapely.make_valid`` (each repair is reported).
    area
        Expected lon/lat bounds ``(minx, miny, maxx, maxy)``; China by default, None to skip.
    row_numbers
        The 1-based file row of each feature, when it is not ``i + 1`` (rows were left out by
        a clip, or blank rows of a sheet).

    Returns
    -------
    tuple
        The typed layer (spec fields in spec order, then extra columns, then geometry) and the
        list of problems.
    """
    df = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
    df.columns = [str(c) for c in df.columns]
    df, _, renamed = _rename_columns(df, spec, file)
    ids = _ids(df, spec)
    found = _Findings(file, ids, list(renamed), row_numbers, spec.name)
    crs_known = gdf.crs is not None
    if not crs_known:
        found.add(
            None,
            "geometry",
            "missing_crs",
            "the file has no CRS; give it with --source-crs (e.g. EPSG:4490, EPSG:4326, "
            "gcj02, bd09)",
        )
    elif CRS.from_user_input(gdf.crs).is_projected:
        found.add(
            None,
            "geometry",
            "not_storage_crs",
            f"features are in projected {gdf.crs.to_string()}; convert to {STORAGE_CRS} "
            f"before checking (prepare_layer does this)",
        )
        crs_known = False
    fields = _check_fields(df, spec, found)
    # Duplicate ids: every repeat after the first is an error that names the first row.
    first: dict[str, int] = {}
    for i, fid in enumerate(ids):
        if fid is not None and fid in first:
            found.add(
                i,
                spec.id_field,
                "duplicate_id",
                f"编号 {fid!r} 与第 {found.row(first[fid])} 行重复 / id {fid!r} already used by "
                f"row {found.row(first[fid])}",
            )
        elif fid is not None:
            first[fid] = i
    extras = [c for c in df.columns if c not in spec.field_names]
    reserved = [c for c in extras if c.casefold() in _RESERVED_COLUMNS]
    if reserved:
        # GeoPackage keeps its own fid and geometry columns: an attribute of that name cannot be
        # stored, so it is kept under a new name rather than lost.
        df = df.rename(columns={c: f"{c}_attr" for c in reserved})
        extras = [f"{c}_attr" if c in reserved else c for c in extras]
        found.add(
            None,
            None,
            "renamed_field",
            f"columns {reserved} clash with GeoPackage's fid/geometry columns; kept as "
            f"{[f'{c}_attr' for c in reserved]}",
            "notice",
        )
    if extras:
        found.add(
            None,
            None,
            "extra_fields",
            f"fields not in the '{spec.name}' spec kept as extra attributes: {extras}",
            "notice",
        )
    geoms = _check_geometry(
        gdf.geometry, spec, found, repair=repair, area=area, crs_known=crs_known
    )
    data = {
        name: s.to_numpy() if not isinstance(s.dtype, pd.api.extensions.ExtensionDtype) else s.array
        for name, s in fields.items()
    }
    for c in extras:
        data[c] = df[c].to_numpy()
    out = gpd.GeoDataFrame(data, geometry=gpd.GeoSeries(list(geoms)).values, crs=gdf.crs)
    out.index = gdf.index
    problems = sorted(found.items, key=lambda p: p.row if p.row is not None else -1)
    return out, problems


def _resolve_crs(
    src_crs: CRS | None, source_crs: str | None, file: str, from_file: bool
) -> tuple[str | None, Problem | None]:
    """Decide the CRS the coordinates are in; returns (crs or china datum, problem)."""
    if source_crs is not None and source_crs.lower() in CHINA_DATUMS:
        if src_crs is not None and not CRS.from_user_input(src_crs).is_geographic:
            return None, Problem(
                file,
                None,
                None,
                "geometry",
                "crs_conflict",
                f"--source-crs {source_crs} needs degrees, but the file is in "
                f"projected {src_crs.to_string()}",
            )
        return source_crs.lower(), None
    given = parse_crs(source_crs)
    if (
        given is not None
        and src_crs is not None
        and from_file
        and not CRS.from_user_input(src_crs).equals(given)
    ):
        return None, Problem(
            file,
            None,
            None,
            "geometry",
            "crs_conflict",
            f"the file says its CRS is {src_crs.to_string()} but --source-crs says "
            f"{given.to_string()}; fix the file's .prj/CRS or drop --source-crs",
        )
    crs = given or src_crs
    if crs is None:
        return None, None
    epsg = CRS.from_user_input(crs).to_epsg()
    if epsg in LEGACY_DATUMS:
        return None, Problem(
            file,
            None,
            None,
            "geometry",
            "legacy_datum",
            f"coordinates are on the {LEGACY_DATUMS[epsg]} datum (EPSG:{epsg}); "
            f"transform them to CGCS2000 with the surveyed 7-parameter set first "
            f"(a parameter-free transform can be off by 100 m)",
        )
    return CRS.from_user_input(crs).to_string(), None


def prepare_layer(
    path: str | Path,
    kind: str,
    *,
    source_crs: str | None = None,
    layer_name: str | None = None,
    encoding: str | None = None,
    lon_field: str | None = None,
    lat_field: str | None = None,
    repair: bool = False,
    area: tuple[float, float, float, float] | None = CHINA_BOUNDS,
    catalog_dir: str | Path | None = None,
    defaults: Mapping[str, Any] | None = None,
    clip_to: District | None = None,
    reference: gpd.GeoDataFrame | None = None,
    reference_name: tuple[str, str] = ("道路", "roads"),
) -> LayerResult:
    """Read a file, convert it to the storage CRS and check it against the spec of ``kind``.

    Data problems do not raise: they are all collected in the result (call
    :meth:`LayerResult.raise_for_errors` or use :func:`load_layer` to raise). The steps, in
    order: read; convert the CRS; match columns to fields; fill defaults; compare the points with
    the reference layer (datum check); clip to the district; check every row that is left.

    Parameters
    ----------
    path
        GeoPackage, GeoJSON, Shapefile, or a CSV/XLSX list with longitude/latitude columns.
    kind
        Catalog layer name, e.g. ``"elder_care"``.
    source_crs
        CRS of the coordinates when the file has none (CSV) or to state it: ``EPSG:4490``,
        ``EPSG:4326``, or ``gcj02`` / ``bd09`` for Amap/echarts or Baidu coordinates, which are
        converted to WGS84.
    layer_name, encoding, lon_field, lat_field
        Passed to :func:`geo_mz.core.read_source` (``layer_name`` is the sheet of an XLSX).
    repair
        Repair invalid geometries with ``make_valid`` (reported per feature).
    area
        Expected lon/lat bounds; features outside are errors.
    catalog_dir
        Alternative catalog folder.
    defaults
        Values for fields the file lacks or leaves empty, by field name, e.g.
        ``{"capacity_persons": 1000, "shelter_id": "auto"}`` (see :mod:`geo_mz.core.defaults`).
    clip_to
        Keep only the rows inside this district; the others are listed in
        ``LayerResult.clipped`` and as notices instead of being errors.
    reference
        A layer in a true datum to compare points with (the workspace's roads); with None the
        datum check reports that it was not possible.
    reference_name
        Chinese and English name of the reference, for messages.

    Returns
    -------
    LayerResult
    """
    spec = get_spec(kind, catalog_dir)
    src = read_source(
        path, layer=layer_name, encoding=encoding, lon_field=lon_field, lat_field=lat_field
    )
    problems = list(src.problems)
    gdf = src.gdf
    file = src.file
    rows = list(src.row_numbers) if src.row_numbers is not None else list(range(1, len(gdf) + 1))
    source_xy = source_coordinates(gdf.geometry)
    crs, crs_problem = _resolve_crs(gdf.crs, source_crs, file, src.crs_from_file)
    if crs_problem is not None:
        problems.append(crs_problem)
        gdf = gdf.set_crs(None, allow_override=True)
        crs_for_check = None
    elif crs is None:
        crs_for_check = None
    else:
        if crs in CHINA_DATUMS:
            gdf = china_datum_to_wgs84(gdf.set_crs(None, allow_override=True), crs)  # type: ignore[arg-type]
        else:
            gdf = gdf.set_crs(crs, allow_override=True)
        try:
            gdf = gdf.to_crs(STORAGE_CRS)
        except Exception as exc:
            raise CrsError(f"{file}: cannot transform from {crs} to {STORAGE_CRS}: {exc}") from exc
        crs_for_check = STORAGE_CRS
    if crs_for_check is None:
        gdf = gdf.set_crs(None, allow_override=True)
    renamed_df, renames, rename_notes = _rename_columns(gdf, spec, file)
    problems = [replace(p, field=renames.get(p.field, p.field)) if p.field else p for p in problems]
    attrs, fills = apply_defaults(
        pd.DataFrame(renamed_df.drop(columns=gdf.geometry.name)), spec, defaults, rows=rows
    )
    gdf = gpd.GeoDataFrame(attrs, geometry=gdf.geometry.values, crs=gdf.crs)
    all_ids = _ids(gdf, spec)
    notes = list(rename_notes)
    datum = None
    declared = declared_reading(crs) if crs_for_check is not None else None
    if spec.geometry == "Point" and declared is not None:
        datum = check_datum(
            source_xy[:, 0],
            source_xy[:, 1],
            declared,
            reference,
            reference_name=reference_name,
            area=clip_to.geometry
            if clip_to is not None and clip_to.source == "admin_units"
            else None,
        )
        notes.append(datum.problem(file))
    keep = np.ones(len(gdf), dtype=bool)
    clipped = None
    if clip_to is not None and crs_for_check is not None:
        keep, clipped, clip_notes = clip_rows(
            gdf.geometry, clip_to, file=file, rows=rows, ids=all_ids, source_xy=source_xy
        )
        notes += clip_notes
        if len(gdf) and not keep.any():
            notes.append(
                Problem(
                    file,
                    None,
                    None,
                    "geometry",
                    "nothing_inside",
                    f"没有一行在辖区内：坐标系（--source-crs）或工作空间对吗？/ no row lies inside "
                    f"the district ({clip_to.label_en}): is --source-crs right, is it the right "
                    f"workspace?",
                )
            )
    notes += fill_notices(fills, keep, file=file, ids=all_ids)
    kept_rows = [r for r, k in zip(rows, keep, strict=True) if k]
    kept = gdf[keep].reset_index(drop=True)
    out, checks = check_layer(
        kept, spec, file=file, repair=repair, area=area, row_numbers=kept_rows
    )
    # Undecodable text is reported once, by the reader, which knows the original bytes.
    seen = {(p.row, p.field) for p in problems if p.code == "non_utf8"}
    checks = [p for p in checks if not (p.code == "non_utf8" and (p.row, p.field) in seen)]
    checks = notes + checks
    if crs_problem is not None:
        checks = [p for p in checks if p.code != "missing_crs"]
    id_of_row = dict(zip(rows, all_ids, strict=True))
    # Problems found while reading (e.g. a bad coordinate) learn their feature id here; those of
    # rows left out by the clip are dropped with the rows (the clip lists the rows themselves).
    dropped = set(rows) - set(kept_rows)
    problems = [
        replace(p, feature_id=id_of_row.get(p.row))
        if p.feature_id is None and p.row is not None
        else p
        for p in problems
        if p.row is None or p.row not in dropped
    ]
    result_problems = problems + checks
    result_problems.sort(key=lambda p: p.row if p.row is not None else -1)
    return LayerResult(
        kind,
        file,
        out,
        result_problems,
        crs,
        clipped,
        clip_to.label if clip_to is not None else None,
        datum,
        kept_rows,
    )


def load_layer(path: str | Path, kind: str, **kwargs: Any) -> gpd.GeoDataFrame:
    """Read and check a layer file; return it in EPSG:4490 or raise with every problem.

    Parameters
    ----------
    path
        The source file.
    kind
        Catalog layer name.
    **kwargs
        Options of :func:`prepare_layer` (``source_crs``, ``repair``, ``area``, ...).

    Returns
    -------
    geopandas.GeoDataFrame

    Raises
    ------
    LayerValidationError
        Listing all errors, each with file, row, id and field.
    """
    result = prepare_layer(path, kind, **kwargs)
    result.raise_for_errors()
    return result.gdf


def summarize(problems: Sequence[Problem]) -> dict[str, int]:
    """Count problems by severity."""
    counts = {"error": 0, "warning": 0, "notice": 0}
    for p in problems:
        counts[p.severity] = counts.get(p.severity, 0) + 1
    return counts

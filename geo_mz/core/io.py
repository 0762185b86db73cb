"""Read layer sources (GeoPackage, GeoJSON, Shapefile, CSV with lon/lat) into GeoDataFrames.

Reading never raises a raw GDAL, pandas or Unicode error: a file that cannot be read at all raises
:class:`~geo_mz.core.LayerReadError` naming the file; text that is not valid UTF-8 is located to
its row and field and returned as a problem, so the validator can report it with everything else.
"""

from __future__ import annotations

import csv
import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio

from geo_mz.core.errors import LayerReadError, Problem

LON_NAMES = ("lon", "lng", "long", "longitude", "x", "经度")
LAT_NAMES = ("lat", "latitude", "y", "纬度")


@dataclass
class SourceData:
    """A source file's features as read, before any CRS conversion or validation.

    Attributes
    ----------
    gdf
        Features in file order; the index is 0..n-1 and row ``i`` is reported as row ``i + 1``.
    file
        The path as given (used in every message).
    problems
        Findings made while reading (non-UTF-8 text, unparseable coordinates, GDAL warnings).
    crs_from_file
        Whether the CRS came from the file (False for CSV, whose CRS the user must state).
    """

    gdf: gpd.GeoDataFrame
    file: str
    problems: list[Problem] = field(default_factory=list)
    crs_from_file: bool = True


def _recover_utf8(df: pd.DataFrame, file: str, encoding_used: str) -> list[Problem]:
    """Re-decode text read as latin-1 into UTF-8 in place, reporting cells that are not UTF-8."""
    problems: list[Problem] = []
    for col in df.columns:
        if col == "geometry" or not (
            pd.api.types.is_object_dtype(df[col]) or pd.api.types.is_string_dtype(df[col])
        ):
            continue
        values = df[col].to_numpy(dtype=object, na_value=None)
        for i, v in enumerate(values):
            if not isinstance(v, str):
                continue
            raw = v.encode(encoding_used, errors="surrogateescape")
            try:
                values[i] = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                problems.append(
                    Problem(
                        file,
                        i + 1,
                        None,
                        str(col),
                        "non_utf8",
                        f"text is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at position "
                        f"{exc.start}); re-save the file as UTF-8, or give its encoding "
                        f"(e.g. --encoding gbk)",
                    )
                )
                values[i] = raw.decode("utf-8", errors="replace")
        df[col] = pd.Series(values, index=df.index, dtype=object)
    return problems


def _read_ogr(path: Path, file: str, layer: str | None, encoding: str | None) -> SourceData:
    try:
        layers = pyogrio.list_layers(path)
    except Exception as exc:  # GDAL raises many types; all mean "not readable"
        raise LayerReadError(f"{file}: not a readable GIS file ({exc})") from exc
    names = [str(n) for n in layers[:, 0]] if len(layers) else []
    if layer is None:
        if len(names) != 1:
            raise LayerReadError(
                f"{file}: holds {len(names)} layers {names}; say which one (--layer-name)"
            )
        layer = names[0]
    elif layer not in names:
        raise LayerReadError(f"{file}: has no layer '{layer}'; layers are {names}")

    no_cpg = path.suffix.lower() == ".shp" and not path.with_suffix(".cpg").exists()
    attempts: list[str | None] = (
        [encoding] if encoding else ([None, "latin1"] if not no_cpg else ["latin1"])
    )
    problems: list[Problem] = []
    last_exc: Exception | None = None
    for enc in attempts:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                gdf = pyogrio.read_dataframe(path, layer=layer, encoding=enc)
            except UnicodeDecodeError as exc:
                last_exc = exc
                continue
            except Exception as exc:
                raise LayerReadError(f"{file}: cannot read layer '{layer}' ({exc})") from exc
        problems += [
            Problem(file, None, None, None, "read_warning", str(w.message), "notice")
            for w in caught
        ]
        gdf = gdf.reset_index(drop=True)
        if enc == "latin1" and encoding is None:
            # Either the file is UTF-8 with a broken byte somewhere, or (shapefile without .cpg)
            # its encoding is unknown: recover what is UTF-8 and report the rest by row and field.
            problems += _recover_utf8(gdf, file, "latin1")
        return SourceData(gdf, file, problems)
    raise LayerReadError(f"{file}: cannot decode text ({last_exc})")


def _pick(cols: list[str], wanted: str | None, names: tuple[str, ...], what: str, file: str) -> str:
    if wanted is not None:
        if wanted not in cols:
            raise LayerReadError(f"{file}: no column '{wanted}' for {what}; columns are {cols}")
        return wanted
    for c in cols:
        if c.strip().casefold() in names:
            return c
    raise LayerReadError(
        f"{file}: no {what} column (looked for {list(names)}); columns are {cols}; "
        f"name it with --{what}-field"
    )


def _read_csv(
    path: Path, file: str, encoding: str | None, lon_field: str | None, lat_field: str | None
) -> SourceData:
    raw = path.read_bytes()
    if b"\x00" in raw:
        raise LayerReadError(f"{file}: contains NUL bytes; not a text CSV file")
    problems: list[Problem] = []
    enc = encoding or "utf-8-sig"
    try:
        text = raw.decode(enc)
        recover = False
    except UnicodeDecodeError:
        text = raw.decode("latin1")
        recover = True
    except LookupError as exc:
        raise LayerReadError(f"{file}: unknown encoding '{encoding}'") from exc
    try:
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, csv.Error, ValueError) as exc:
        raise LayerReadError(f"{file}: not a readable CSV table ({exc})") from exc
    df.columns = [str(c) for c in df.columns]
    if recover:
        df.columns = [
            c.encode("latin1").decode("utf-8", errors="replace").removeprefix("\ufeff")
            for c in df.columns
        ]
        problems += _recover_utf8(df, file, "latin1")
    cols = list(df.columns)
    lon_c = _pick(cols, lon_field, LON_NAMES, "lon", file)
    lat_c = _pick(cols, lat_field, LAT_NAMES, "lat", file)
    lon = pd.to_numeric(df[lon_c], errors="coerce").to_numpy(dtype=float)
    lat = pd.to_numeric(df[lat_c], errors="coerce").to_numpy(dtype=float)
    for col, arr in ((lon_c, lon), (lat_c, lat)):
        for i in np.flatnonzero(~np.isfinite(arr)):
            problems.append(
                Problem(
                    file,
                    int(i) + 1,
                    None,
                    col,
                    "wrong_type",
                    f"coordinate {df[col].iloc[i]!r} is not a number",
                )
            )
    ok = np.isfinite(lon) & np.isfinite(lat)
    geoms = gpd.points_from_xy(np.where(ok, lon, 0.0), np.where(ok, lat, 0.0))
    geoms = np.where(ok, np.asarray(geoms, dtype=object), None)
    gdf = gpd.GeoDataFrame(df.drop(columns=[lon_c, lat_c]), geometry=list(geoms), crs=None)
    return SourceData(gdf, file, problems, crs_from_file=False)


def read_source(
    path: str | Path,
    *,
    layer: str | None = None,
    encoding: str | None = None,
    lon_field: str | None = None,
    lat_field: str | None = None,
) -> SourceData:
    """Read one layer of a GIS file as it is, reporting unreadable text by row and field.

    Parameters
    ----------
    path
        A GeoPackage, GeoJSON, Shapefile (``.shp``), or CSV with longitude/latitude columns.
        Other formats GDAL reads work too.
    layer
        Layer name inside a multi-layer file (GeoPackage); optional when the file has one layer.
    encoding
        Text encoding when it is not UTF-8 or declared by the file (e.g. ``"gbk"``).
    lon_field, lat_field
        CSV coordinate columns; detected from common names (lon/lng/longitude/x/经度...) when None.

    Returns
    -------
    SourceData

    Raises
    ------
    LayerReadError
        The file is missing, empty, not a GIS file, or its layer/columns cannot be found.
    """
    p = Path(path)
    file = str(path)
    if not p.exists():
        raise LayerReadError(f"{file}: no such file")
    if p.is_dir():
        raise LayerReadError(f"{file}: is a directory, not a file")
    if p.stat().st_size == 0:
        raise LayerReadError(f"{file}: file is empty")
    if p.suffix.lower() in (".csv", ".txt"):
        return _read_csv(p, file, encoding, lon_field, lat_field)
    return _read_ogr(p, file, layer, encoding)

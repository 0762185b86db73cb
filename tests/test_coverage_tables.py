"""The unit tables of coverage_by_unit against a frozen copy of their first implementation.

The tables were made cheaper for county parts (numpy instead of per-call pandas frames); their
output must not change by a bit. ``old_*`` below is the code as it was before (pandas
selection of the units, scipy sparse mode), kept here only as the reference
(``bench/bench_unit_tables.py`` times it against the new code).
"""

from __future__ import annotations

import functools

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from scipy.sparse import coo_matrix

from geo_mz.core import units as core_units
from geo_mz.core.errors import CrsError, GeoMzError, UnitsError
from geo_mz.core.standards import COVERAGE_THRESHOLDS_MIN, TARGET_SHARE
from geo_mz.eldercare import coverage as cv
from geo_mz.eldercare._common import (
    TOL_MIN,
    TOL_PERSONS,
    CoverageError,
    check_gdf,
    check_positive,
    mode_by_weight,
    nonneg_numbers,
)
from tests.test_coverage import LINE, centres_frame, population, units, walk_net

# --------------------------------------------------------------------------- frozen reference


def old_check_units(units: object) -> None:
    if not isinstance(units, gpd.GeoDataFrame):
        raise TypeError(
            f"区划单元须为 GeoDataFrame，实为 {type(units).__name__} / `units` must be a "
            f"GeoDataFrame, got {type(units).__name__}"
        )
    if units.crs is None:
        raise CrsError(
            "区划单元没有坐标系，请先设置，如 .set_crs('EPSG:4490') / `units` has no CRS; set it "
            "with .set_crs(...), e.g. 'EPSG:4490'"
        )
    missing = [c for c in ("adcode", "name", "level") if c not in units.columns]
    if missing:
        raise UnitsError(
            f"区划单元 admin_units 缺少字段 {missing}，请在导入的文件中补上 / the admin_units "
            f"layer lacks field(s) {missing} (it has {list(units.columns)}); add them to the "
            "imported file"
        )


def old_units_of_level(units: gpd.GeoDataFrame, level: str) -> gpd.GeoDataFrame:
    old_check_units(units)
    levels = sorted(units["level"].dropna().unique().tolist())
    if level not in levels:
        raise UnitsError(
            f"区划单元 admin_units 中没有 {level} 级单元 (现有 {levels})，请导入该级区划面或改用"
            f"现有级别 / the admin_units layer has no {level} units (it has {levels}): import "
            f"the {level} polygons (geo-mz import FILE --layer admin_units), or choose one of "
            f"{levels}"
        )
    keep = units["level"] == level
    if "in_jurisdiction" in units.columns:
        keep &= units["in_jurisdiction"].astype("boolean").fillna(True)
    u = units.loc[keep.to_numpy(dtype=bool)].sort_values("adcode").reset_index(drop=True)
    u["adcode"] = u["adcode"].astype(str)
    dup = sorted(set(u.loc[u["adcode"].duplicated(), "adcode"]))
    if dup:
        raise UnitsError(
            f"{level} 级区划代码重复 {dup[:10]}，请在 admin_units 中每个代码只保留一个单元 / the "
            f"{level} units repeat adcodes {dup[:10]}; keep one unit per code in admin_units"
        )
    if u["adcode"].str.len().nunique() != 1:
        raise UnitsError(
            f"{level} 级区划代码长度不一，无法按代码前缀归属，请统一为 GB/T 2260 代码 (乡镇9位、"
            f"村居12位) / the {level} units' adcodes differ in length, so points cannot be "
            "joined by code prefix; use GB/T 2260 codes of one length (9 digits for towns, 12 "
            "for villages)"
        )
    if "urban_rural" not in u.columns:
        u["urban_rural"] = None
    return u


def old_assign_to_units(points: gpd.GeoDataFrame, units: gpd.GeoDataFrame) -> np.ndarray:
    length = len(units["adcode"].iloc[0]) if len(units) else 0
    pos = np.full(len(points), -1, dtype=np.int64)
    has = np.zeros(len(points), dtype=bool)
    if "adcode" in points.columns and len(units):
        fact, uniq = pd.factorize(points["adcode"])
        ucode = [str(c) for c in uniq]
        upos = pd.Index(units["adcode"]).get_indexer([c[:length] for c in ucode])
        uhas = np.array([len(c) >= length for c in ucode] + [False], dtype=bool)
        has = uhas[fact]
        pos[has] = upos[fact[has]]
    rest = np.flatnonzero(~has)
    if len(rest) and len(units):
        geoms = units.geometry.to_crs(points.crs) if units.crs != points.crs else units.geometry
        tree = shapely.STRtree(np.asarray(geoms.values))
        pi, ui = tree.query(np.asarray(points.geometry.values)[rest], predicate="intersects")
        first = pd.Series(ui).groupby(pi).min()
        pos[rest[first.index.to_numpy()]] = first.to_numpy()
    return pos


def old_frame_rows(u: gpd.GeoDataFrame, level: str, extra: bool) -> pd.DataFrame:
    ur = [None if pd.isna(x) else x for x in u["urban_rural"].astype(object)]
    recs = list(zip([level] * len(u), u["adcode"], u["name"], ur, strict=True))
    if extra:
        recs.append(("unassigned", None, "未归属 unassigned", None))
    codes = {str(c)[:6] for c in u["adcode"]}
    recs.append(("total", codes.pop() if len(codes) == 1 else None, "合计 total", None))
    return pd.DataFrame(recs, columns=["level", "adcode", "name", "urban_rural"], dtype=object)


def old_mode_by_weight(group: np.ndarray, value: np.ndarray, weight: np.ndarray, k: int) -> list:
    vi, uniq = pd.factorize(value)
    ok = vi >= 0
    out: list = [None] * k
    if ok.any():
        m = coo_matrix((weight[ok], (group[ok], vi[ok])), shape=(k, len(uniq))).tocsr()
        best = np.asarray(m.argmax(axis=1)).ravel()
        top = m.max(axis=1).toarray().ravel()
        out = [uniq[b] if t > 0 else None for b, t in zip(best, top, strict=True)]
    return out


def old_coverage_by_unit(
    times, units, *, level, thresholds_min=COVERAGE_THRESHOLDS_MIN, targets=TARGET_SHARE,
    target_min=15.0, pop_field="pop_60plus",
):  # fmt: skip
    check_gdf(times, "times", ("walk_min", "nearest_centre", pop_field))
    ths = sorted({check_positive("thresholds_min", t) for t in thresholds_min})
    if float(target_min) not in ths:
        raise CoverageError(f"`target_min` {target_min!r} must be one of {ths}")
    if not targets or any(not 0 <= float(x) <= 1 for x in targets.values()):
        raise CoverageError(f"`targets` must map urban_rural codes to shares in [0, 1]: {targets}")
    try:
        u = old_units_of_level(units, level)
    except UnitsError as exc:
        raise CoverageError(str(exc)) from exc
    pos = old_assign_to_units(times, u)
    k = len(u) + 1
    g = np.where(pos >= 0, pos, len(u))
    pop = nonneg_numbers(times, pop_field, "times")
    walk = pd.to_numeric(times["walk_min"]).to_numpy(dtype=float)

    def bsum(w):
        return np.bincount(g, weights=w, minlength=k)

    reach = np.isfinite(walk)
    pop_u = bsum(pop)
    cols = {pop_field: pop_u}
    for t in ths:
        cols[f"covered_{t:g}min"] = bsum(pop * (walk <= t + TOL_MIN))
    strict = max(float(x) for x in targets.values())
    ur = [*u["urban_rural"].astype(object), None]
    target = np.array([float(targets.get(x, strict)) if isinstance(x, str) else strict for x in ur])
    required = np.ceil(target * pop_u - TOL_PERSONS)
    covered_t = cols[f"covered_{float(target_min):g}min"]
    shortfall = np.maximum(required - covered_t, 0.0)
    walk_w = bsum(np.where(reach, walk, 0.0) * pop)
    reach_pop = bsum(pop * reach)
    unreach = bsum(pop * ~reach)
    too_far = times["too_far"].to_numpy(dtype=bool) if "too_far" in times.columns else 0 * pop
    too_far_pop = bsum(pop * too_far)
    adj = None
    if "covered_pop_adjusted" in times.columns:
        adj = bsum(pd.to_numeric(times["covered_pop_adjusted"]).to_numpy(dtype=float))
    near = times["nearest_centre"].to_numpy(dtype=object)
    nearest = old_mode_by_weight(g, near, pop, k)
    all_near = old_mode_by_weight(np.zeros(len(g), np.int64), near, pop, 1)[0]
    extra = bool(pop_u[-1] > 0 or (pos < 0).any())
    sel = np.r_[np.arange(len(u)), [len(u)] if extra else []].astype(np.int64)
    rows = old_frame_rows(u, level, extra)

    def with_total(x):
        return np.r_[x[sel], x[sel].sum()]

    p = with_total(pop_u)
    safe = np.where(p > 0, p, np.nan)
    rows[pop_field] = p
    for t in ths:
        c = with_total(cols[f"covered_{t:g}min"])
        rows[f"covered_{t:g}min"] = c
        rows[f"share_{t:g}min"] = c / safe
    req = with_total(required)
    rows["target_share"] = np.r_[target[sel], req[-1] / safe[-1]]
    sf = with_total(shortfall)
    meets = pd.array(sf <= TOL_PERSONS, dtype="boolean")
    meets[p <= 0] = pd.NA
    rows["meets_target"] = meets
    rows["shortfall_persons"] = sf
    rp = with_total(reach_pop)
    rows["mean_walk_min"] = with_total(walk_w) / np.where(rp > 0, rp, np.nan)
    rows["nearest_centre"] = pd.Series([nearest[i] for i in sel] + [all_near], dtype=object)
    rows["unreachable_pop"] = with_total(unreach)
    rows["too_far_pop"] = with_total(too_far_pop)
    if adj is not None:
        rows["covered_capacity_adj"] = with_total(adj)
        rows["share_capacity_adj"] = with_total(adj) / safe
    return rows


# --------------------------------------------------------------------------- comparison


def outcome(fn, *args, **kwargs):
    """The function's result, or the type and message of what it raised."""
    try:
        return fn(*args, **kwargs)
    except (GeoMzError, ValueError, TypeError, KeyError) as exc:
        return (type(exc), str(exc))


def assert_same(old, new) -> None:
    """Identical frames (values, dtypes, order, index) or identical errors."""
    if isinstance(old, tuple) or isinstance(new, tuple):
        assert isinstance(old, tuple) and isinstance(new, tuple), (old, new)
        assert old[1] == new[1] and issubclass(new[0], old[0]), (old, new)
        return
    pd.testing.assert_frame_equal(new, old, check_exact=True)
    assert list(new.dtypes) == list(old.dtypes)
    for col in [c for c in new.columns if pd.api.types.is_object_dtype(new[c])]:  # None != NaN
        assert [type(x) for x in new[col]] == [type(x) for x in old[col]], col


def check_tables(times, adm, levels, **kw) -> None:
    for level in levels:
        old = outcome(old_coverage_by_unit, times, adm, level=level, **kw)
        new = outcome(cv.coverage_by_unit, times, adm, level=level, **kw)
        assert_same(old, new)
        uo = outcome(old_units_of_level, adm, level)
        un = outcome(core_units.units_of_level, adm, level)
        assert_same(uo, un)
        if not isinstance(uo, tuple):
            ao = outcome(old_assign_to_units, times, uo)
            an = outcome(core_units.assign_to_units, times, un)
            if isinstance(ao, tuple) or isinstance(an, tuple):
                assert ao == an
            else:
                np.testing.assert_array_equal(an, ao)
    good = [lv for lv in levels if not isinstance(outcome(cv.coverage_by_unit, times, adm,
                                                          level=lv, **kw), tuple)]  # fmt: skip
    if good:
        both = cv.coverage_by_units(times, adm, levels=good, **kw)
        each = pd.concat([cv.coverage_by_unit(times, adm, level=lv, **kw) for lv in good],
                         ignore_index=True)  # fmt: skip
        assert_same(each, both)
        units_only = cv.coverage_by_units(times, adm, levels=good, totals=False, **kw)
        kept = each[each["level"].isin(good)].reset_index(drop=True)
        assert_same(kept, units_only)


# --------------------------------------------------------------------------- fixtures


def test_hand_network_tables_unchanged():
    net = walk_net(LINE)
    for adcode in (True, False):
        t = cv.access_times(net, centres_frame([{}], [(0, -30)]), population(adcode=adcode))
        check_tables(t, units(), ("county", "town", "village", "city"))
        check_tables(t.drop(columns="too_far"), units(), ("village",), thresholds_min=(7.5, 15))
    pts = [(100, 0, 5, "440703001001"), (200, 0, 2, "440703009001")]  # 2nd: unknown village
    t = cv.access_times(net, centres_frame([{}], [(0, 0)]), population(pts))
    check_tables(t, units(), ("county", "town", "village"))
    check_tables(t, units(), ("village",), targets={"urban": 0.9}, target_min=10)
    check_tables(t, units(), ("village",), thresholds_min=(10,))  # target_min not a circle
    check_tables(t.assign(covered_pop_adjusted=[1.5, 0.25]), units(), ("village", "town"))


@functools.cache
def pengjiang():
    from geo_mz.datasets.pengjiang import build_pengjiang
    from geo_mz.network.graph import ELDERLY_WALK_SPEED_KMH, network_from_roads

    layers = build_pengjiang().layers
    net = network_from_roads(
        layers["roads"], mode="walk", measure_crs="EPSG:4547",
        walk_speed_kmh=ELDERLY_WALK_SPEED_KMH,
    )  # fmt: skip
    centres = cv.select_centres(layers["elder_care"], kinds=cv.COMMUNITY_KINDS)
    return layers["admin_units"], cv.access_times(net, centres, layers["population"])


def test_pengjiang_tables_unchanged():
    adm, times = pengjiang()
    check_tables(times, adm, ("county", "town", "village"))
    spatial = times.drop(columns="adcode")  # the spatial join
    check_tables(spatial, adm, ("town", "village"))
    # a county part's own rows, as part_unit_tables passes them
    own = adm["adcode"].astype(str).str.startswith("440703").to_numpy()
    check_tables(times.iloc[::3], adm[own], ("county", "town", "village"))
    # string columns as a GeoPackage read gives them (pandas str dtype)
    check_tables(times, adm.astype({c: "str" for c in ("adcode", "name", "level")}), ("town",))


# --------------------------------------------------------------------------- random frames

CODES_T = ["440703001", "440703002", "440703003", "440704001"]


def random_case(seed: int):
    """Towns and villages as boxes, points with messy times, codes and people."""
    rng = np.random.default_rng(seed)
    recs, geoms = [], []
    box = shapely.box
    x0, y0 = 113.0, 22.5
    for i, town in enumerate(CODES_T[: rng.integers(1, 5)]):
        recs.append((town, f"镇{i}", "town", rng.choice(["urban", "rural", None, "mixed"])))
        geoms.append(box(x0 + i * 0.01, y0, x0 + (i + 1) * 0.01, y0 + 0.01))
        for j in range(rng.integers(0, 4)):
            recs.append((f"{town}{j + 1:03d}", f"村{i}{j}", "village",
                         rng.choice(["urban", "rural", None])))  # fmt: skip
            geoms.append(box(x0 + i * 0.01 + j * 0.0025, y0, x0 + i * 0.01 + (j + 1) * 0.0025,
                             y0 + 0.01))  # fmt: skip
    recs.append(("440703", "区", "county", None))
    geoms.append(box(x0, y0, x0 + 0.04, y0 + 0.01))
    order = rng.permutation(len(recs))  # stored order is not code order
    adm = gpd.GeoDataFrame(
        [recs[i] for i in order], columns=["adcode", "name", "level", "urban_rural"],
        geometry=[geoms[i] for i in order], crs="EPSG:4490",
    )  # fmt: skip
    adm["in_jurisdiction"] = pd.array(rng.choice([True, True, True, False, None], len(adm)),
                                      dtype="boolean")  # fmt: skip
    if rng.random() < 0.3:
        adm = adm.drop(columns="urban_rural")
    kind = rng.integers(0, 3)  # pandas' str dtype (a GeoPackage read), plain objects, categories
    if kind == 1:
        adm = adm.astype({c: object for c in ("adcode", "name", "level")})
    elif kind == 2:
        cats = [c for c in ("urban_rural", "name", "level") if c in adm.columns]
        adm = adm.astype(dict.fromkeys(cats, "category"))
    if rng.random() < 0.2:
        adm["in_jurisdiction"] = adm["in_jurisdiction"].fillna(True).astype(bool)
    n = int(rng.integers(0, 300))
    xy = np.c_[rng.uniform(x0 - 0.002, x0 + 0.042, n), rng.uniform(y0 - 0.002, y0 + 0.012, n)]
    pts = gpd.GeoDataFrame(geometry=shapely.points(xy), crs="EPSG:4490")
    if rng.random() < 0.5:
        pts = pts.to_crs("EPSG:4547")
    known = [c for c in adm["adcode"].astype(str) if len(c) >= 9] + ["440705001001"]
    extra = [None, "4407"] if rng.random() < 0.6 else []  # else every point joins by code
    code = rng.choice(np.array([*known, *extra], dtype=object), n)
    if rng.random() < 0.8:
        pts["adcode"] = code
    if rng.random() < 0.5:  # whole people: exact sums and exact ties
        pts["pop_60plus"] = rng.integers(0, 4, n).astype(float)
    else:
        pts["pop_60plus"] = np.round(rng.exponential(3.0, n), int(rng.integers(1, 4)))
    if "adcode" in pts.columns and rng.random() < 0.3:  # a town without people
        pts.loc[pts["adcode"].astype(str).str.startswith(CODES_T[0]).to_numpy(), "pop_60plus"] = 0
    walk = rng.uniform(0, 25, n)
    walk[rng.random(n) < 0.1] = np.inf
    walk[rng.random(n) < 0.05] = np.nan
    walk[rng.random(n) < 0.1] = 15.0  # on the circle's edge
    pts["walk_min"] = walk
    near = rng.choice(["C1", "C2", "C3", None], n).astype(object)
    pts["nearest_centre"] = np.where(np.isfinite(walk), near, None)
    if rng.random() < 0.7:
        pts["too_far"] = rng.random(n) < 0.1
    if rng.random() < 0.3:
        pts["covered_pop_adjusted"] = pts["pop_60plus"] * rng.random(n)
    if rng.random() < 0.2:
        pts.index = pd.Index(rng.permutation(n) + 100)
    return adm, pts


@pytest.mark.parametrize("seed", range(60))
def test_random_tables_unchanged(seed: int):
    adm, pts = random_case(seed)
    check_tables(pts, adm, ("county", "town", "village"))


def test_duplicate_and_uneven_codes_raise_the_same():
    adm, pts = random_case(3)
    town = adm[adm["level"] == "town"].iloc[:1]
    dup = pd.concat([adm, town.assign(in_jurisdiction=True)], ignore_index=True)
    check_tables(pts, dup, ("town",))
    uneven = pd.concat([adm, town.assign(adcode="44070399", in_jurisdiction=True)])
    check_tables(pts, uneven, ("town",))
    numeric = adm.assign(adcode=adm["adcode"].astype("int64"))
    check_tables(pts, numeric, ("town", "county"))
    gone = adm.assign(in_jurisdiction=np.where(adm["level"] == "town", False, True))
    check_tables(pts, gone, ("town",))
    for dtype in (object, "str"):  # a unit without a code: pandas' sort and str() decide
        missing = adm.astype({"adcode": object})
        missing.loc[missing.index[missing["level"] == "town"][:1], "adcode"] = None
        check_tables(pts, missing.astype({"adcode": dtype}), ("town", "county"))


def no_crs(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(gdf.drop(columns="geometry"), geometry=np.asarray(gdf.geometry.values))


def test_bad_inputs_raise_the_same():
    adm, pts = random_case(5)
    bad_units = [
        pd.DataFrame(adm.drop(columns="geometry")),  # not a GeoDataFrame
        no_crs(adm),
        adm.drop(columns="name"),
    ]
    for u in bad_units:
        check_tables(pts, u, ("town",))
    bad_times = [
        no_crs(pts),
        pts.drop(columns="walk_min"),
        pts.assign(pop_60plus=-1.0),
        pts.assign(pop_60plus="many"),
        pts.assign(walk_min="far"),
    ]
    for t in bad_times:
        check_tables(t, adm, ("town",))
    check_tables(pts, adm, ("town",), target_min=12)
    check_tables(pts, adm, ("town",), targets={"urban": 1.5})
    check_tables(pts, adm, ("town",), thresholds_min=(0,))


# --------------------------------------------------------------------------- the mode


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("kind", range(4))
@pytest.mark.parametrize(("k", "nu"), [(1, 1), (1, 2), (5, 7), (400, 300)])  # last: pairs only
def test_mode_by_weight_equals_scipy(seed: int, kind: int, k: int, nu: int):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 4000))
    group = rng.integers(0, k, n)
    value = rng.choice(np.array([f"C{i}" for i in range(nu)] + [None], dtype=object), n)
    if kind == 0:
        weight = rng.integers(0, 3, n).astype(float)  # whole numbers, many exact ties
    elif kind == 1:
        weight = rng.choice([0.1, 0.2, 0.3, 0.7], n)  # sums that tie up to rounding
    elif kind == 2:
        weight = rng.exponential(2.0, n)
    else:
        weight = rng.choice([0.0, 1.0, np.inf], n)
    assert mode_by_weight(group, value, weight, k) == old_mode_by_weight(group, value, weight, k)
    one = np.zeros(n, np.int64)
    assert mode_by_weight(one, value, weight, 1) == old_mode_by_weight(one, value, weight, 1)


# --------------------------------------------------------------------------- a part's tables


def old_part_unit_tables(times, units, part, settings) -> pd.DataFrame:
    """``part_unit_tables`` as it was: one coverage_by_unit call per level."""
    from geo_mz.scale.part_inputs import own_rows

    own = own_rows(units, part.code)
    level = units["level"].to_numpy(dtype=object)
    tables = []
    for lv in ("county", "town", "village"):
        mine = own & (level == lv)
        if not mine.any() or times.empty:
            continue
        tab = old_coverage_by_unit(
            times, units[mine], level=lv, thresholds_min=settings.thresholds_min,
            targets=settings.targets,
        )  # fmt: skip
        tables.append(tab[tab["level"] == lv])
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame({"adcode": []})


def test_part_unit_tables_equal_the_old_per_level_calls():
    from types import SimpleNamespace

    from geo_mz.eldercare.circle15 import CircleSettings
    from geo_mz.scale.part_inputs import part_unit_tables

    adm, times = pengjiang()
    settings = CircleSettings()
    code = times["adcode"].astype(str)
    towns = sorted(adm.loc[adm["level"] == "town", "adcode"].astype(str))[:2]
    for part_code in [*sorted(set(adm["adcode"].astype(str).str[:6])), "4407", *towns]:
        part = SimpleNamespace(code=part_code)
        mine = times[code.str.startswith(part_code).to_numpy()]
        for t in (mine, mine.iloc[:0]):
            old = old_part_unit_tables(t, adm, part, settings)
            assert_same(old, part_unit_tables(t, adm, part, settings))

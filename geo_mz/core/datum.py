"""Check that points are in the datum they are declared in, against a reference layer.

Amap/Tencent (GCJ-02) and Baidu (BD-09) coordinates are deliberate offsets of WGS84 by a few
hundred metres; a list exported from those maps and imported as WGS84/CGCS2000 lands off by
300–700 m without any other sign. This module reads the file's coordinates three ways (as
WGS84/CGCS2000, as GCJ-02, as BD-09, each converted to WGS84), measures every point's distance
to the nearest feature of a reference layer in the same area (the workspace's roads) and says
which reading fits the reference clearly better than the declared one.

The decision (all thresholds are local choices, kept as module constants):

- only points within :data:`NEAR_M` of the reference under some reading count (the reference
  does not cover the others), and at least :data:`MIN_POINTS` of them;
- a reading *fits clearly better* than another when it puts at least :data:`MIN_SHARE` of the
  points closer to the reference, and its median distance is at most :data:`MAX_RATIO` of the
  other's and at least :data:`MIN_GAIN_M` smaller;
- a warning when another reading fits clearly better than the declared one; a notice saying so
  when the declared reading fits clearly better than both others; otherwise a notice that the
  check is inconclusive, with the figures.

Facilities sit beside streets, not on them; where the reference network is dense (blocks of
100–200 m) a point moved by 600 m is still about as close to some street, so the check
can only be inconclusive there. It is a guard against the common mistake, never a proof.

A second, independent signal when the list is clipped to the district (``area``): the points
whose side of the district boundary depends on the reading. Under the right reading a list
lies where it belongs, so a wrong reading pushes points across the boundary one way only (a
city's list read in the wrong datum puts coastal shelters into the sea or across the border);
where the list extends beyond the district, points cross both ways about equally. A one-sided
sign test on those points (:data:`AREA_ALPHA`) says when another reading keeps clearly more
points inside; it can only add a warning, never overrule the roads.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import geopandas as gpd
import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from geo_mz.core.errors import Problem
from geo_mz.core.projection import bd09_to_wgs84, gcj02_to_wgs84, gk_zone_crs

#: A point counts when some reading puts it this close to the reference (m; local choice:
#: GCJ-02 moves points 300–700 m, so a point beside a street under the right reading is within
#: this distance under at least that reading).
NEAR_M = 500.0
#: Points needed near the reference for a verdict (local choice).
MIN_POINTS = 5
#: Share of points a reading must put closer to the reference (local choice).
MIN_SHARE = 0.75
#: Its median distance at most this fraction of the other reading's (local choice).
MAX_RATIO = 0.5
#: And at least this much smaller, in metres (local choice).
MIN_GAIN_M = 25.0
#: Search radius for the nearest reference feature (m); farther points get infinity.
SEARCH_M = 5000.0

#: Significance of the boundary signal: one-sided sign test on the points that cross the
#: district boundary between two readings (local choice: 7 of 7 one way is p = 0.008).
AREA_ALPHA = 0.01

READINGS: tuple[str, ...] = ("wgs84", "gcj02", "bd09")
_NAMES = {
    "wgs84": ("WGS84/CGCS2000（GPS、天地图）", "WGS84/CGCS2000 (GPS, Tianditu)", "EPSG:4490"),
    "gcj02": ("GCJ-02（高德、腾讯）", "GCJ-02 (Amap, Tencent)", "gcj02"),
    "bd09": ("BD-09（百度）", "BD-09 (Baidu)", "bd09"),
}
_TO_WGS84: dict[str, Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]] = {
    "wgs84": lambda x, y: (x, y),
    "gcj02": gcj02_to_wgs84,
    "bd09": bd09_to_wgs84,
}


@dataclass(frozen=True)
class DatumCheck:
    """The outcome of ``check_datum`` (in :mod:`geo_mz.core.datum`).

    Attributes
    ----------
    declared
        The reading the user declared: ``wgs84`` (also for CGCS2000), ``gcj02`` or ``bd09``.
    verdict
        ``suspect`` (another reading fits clearly better), ``fits`` (the declared one does),
        ``inconclusive`` or ``not_possible``.
    best
        The reading that fits best when the verdict is ``suspect`` or ``fits``.
    points_used
        Points within ``NEAR_M`` (500 m) of the reference under some reading.
    median_m
        Median distance to the reference per reading, over the points used.
    closer_share
        Per other reading: the share of points it puts closer than the declared reading.
    message
        The finding, Chinese first then English.
    area_crossings
        Per other reading: points inside the district only under that reading, and points
        inside only under the declared one (empty without an area).
    """

    declared: str
    verdict: str
    best: str | None = None
    points_used: int = 0
    median_m: dict[str, float] = field(default_factory=dict)
    closer_share: dict[str, float] = field(default_factory=dict)
    message: str = ""
    area_crossings: dict[str, tuple[int, int]] = field(default_factory=dict)

    def problem(self, file: str) -> Problem:
        """Return the finding as a problem of ``file``: a warning when suspect, else a notice."""
        code = "datum_suspect" if self.verdict == "suspect" else "datum_check"
        severity = "warning" if self.verdict == "suspect" else "notice"
        return Problem(file, None, None, "geometry", code, self.message, severity)


def declared_reading(crs: str | None) -> str | None:
    """Return the reading a resolved CRS means, or None when the check does not apply."""
    if crs is None:
        return None
    c = crs.lower()
    if c in ("gcj02", "bd09"):
        return c
    if c in ("epsg:4326", "epsg:4490"):
        return "wgs84"
    return None


def _clearly_better(a: np.ndarray, b: np.ndarray) -> tuple[bool, float]:
    """Whether distances ``a`` fit clearly better than ``b``; and the share of ``a`` closer."""
    share = float(np.mean(a < b))
    med_a, med_b = float(np.median(a)), float(np.median(b))
    ok = share >= MIN_SHARE and med_a <= MAX_RATIO * med_b and med_b - med_a >= MIN_GAIN_M
    return ok, share


def check_datum(
    lon: np.ndarray,
    lat: np.ndarray,
    declared: str,
    reference: gpd.GeoDataFrame | None,
    *,
    reference_name: Sequence[str] = ("道路", "roads"),
    area: BaseGeometry | None = None,
) -> DatumCheck:
    """Say whether points fit a reference layer (or the district) better in another datum.

    Parameters
    ----------
    lon, lat
        The points' coordinates as given in the file (degrees; NaN where missing).
    declared
        ``wgs84``, ``gcj02`` or ``bd09`` (see :func:`declared_reading`).
    reference
        Lines or points in a true datum (WGS84/CGCS2000), e.g. the workspace's roads; None
        when there is none.
    reference_name
        Chinese and English name of the reference, for messages.
    area
        The district the list is clipped to (polygon in lon/lat, EPSG:4490/4326), for the
        boundary signal (see the module docstring); None to skip it.

    Returns
    -------
    DatumCheck
    """
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    road = _road_check(lon, lat, declared, reference, reference_name)
    if area is None or road.verdict == "suspect":
        return road
    ok = np.isfinite(lon) & np.isfinite(lat)
    crossings, best, p = _area_signal(lon[ok], lat[ok], declared, area)
    if best is None or road.verdict == "fits":  # the boundary never overrules the roads
        zh = "；辖区边界：" + "，".join(
            f"按 {r} 多进 {a} 个、按声明多进 {b} 个" for r, (a, b) in crossings.items()
        )
        en = "; district boundary: " + ", ".join(
            f"as {r} {a} more inside, as declared {b}" for r, (a, b) in crossings.items()
        )
        zh_msg, _, en_msg = road.message.partition(" / ")
        return replace(road, message=f"{zh_msg}{zh} / {en_msg}{en}", area_crossings=crossings)
    zh, en, option = _NAMES[best]
    a, b = crossings[best]
    message = (
        f"这些坐标像是{zh}坐标：按 {best} 读取时有 {a} 个点落在辖区内而按声明读取在辖区外，"
        f"反过来只有 {b} 个（符号检验 p = {p:.3f}）；请用 --source-crs {option} 重新导入 / "
        f"these look like {en} coordinates: read as {best}, {a} points lie inside the district "
        f"that lie outside as declared, and {b} the other way (sign test p = {p:.3f}); "
        f"re-import with --source-crs {option}"
    )
    return DatumCheck(
        declared,
        "suspect",
        best,
        road.points_used,
        road.median_m,
        road.closer_share,
        message,
        crossings,
    )


def _area_signal(
    lon: np.ndarray, lat: np.ndarray, declared: str, area: BaseGeometry
) -> tuple[dict[str, tuple[int, int]], str | None, float]:
    """Points crossing the district boundary per reading, and the reading the test favours."""
    from scipy.stats import binomtest

    shapely.prepare(area)
    inside = {r: shapely.contains_xy(area, *_TO_WGS84[r](lon, lat)) for r in READINGS}
    crossings: dict[str, tuple[int, int]] = {}
    best, best_p = None, 1.0
    for r in READINGS:
        if r == declared:
            continue
        a = int((inside[r] & ~inside[declared]).sum())
        b = int((inside[declared] & ~inside[r]).sum())
        crossings[r] = (a, b)
        p = binomtest(a, a + b, 0.5, alternative="greater").pvalue if a + b else 1.0
        if p <= AREA_ALPHA and p < best_p:
            best, best_p = r, float(p)
    return crossings, best, best_p


def _road_check(
    lon: np.ndarray,
    lat: np.ndarray,
    declared: str,
    reference: gpd.GeoDataFrame | None,
    reference_name: Sequence[str],
) -> DatumCheck:
    """Check the roads signal (see the module docstring)."""
    ref_zh, ref_en = reference_name
    ok = np.isfinite(lon) & np.isfinite(lat)
    if reference is None or not len(reference) or reference.crs is None:
        return DatumCheck(
            declared,
            "not_possible",
            message=f"坐标系核对未做：没有可对照的{ref_zh}图层（导入道路后可核对）/ datum check "
            f"not possible: no {ref_en} layer to compare with (import one to get this check)",
        )
    if not ok.any():
        return DatumCheck(
            declared,
            "not_possible",
            message="坐标系核对未做：没有可用的坐标 / datum check not possible: no usable "
            "coordinates",
        )
    measure = gk_zone_crs(float(np.median(lon[ok])))
    ref = reference.to_crs(measure)
    geoms = np.asarray(ref.geometry.values, dtype=object)
    geoms = geoms[~shapely.is_missing(geoms)]
    tree = shapely.STRtree(geoms)
    dist: dict[str, np.ndarray] = {}
    for reading in READINGS:
        x, y = _TO_WGS84[reading](lon[ok], lat[ok])
        pts = gpd.GeoSeries(gpd.points_from_xy(x, y), crs="EPSG:4326").to_crs(measure)
        (idx, _), d = tree.query_nearest(
            np.asarray(pts.values), max_distance=SEARCH_M, return_distance=True
        )
        out = np.full(len(pts), np.inf)
        out[idx] = d  # several equally near features give the same distance
        dist[reading] = out
    near = np.min(np.vstack(list(dist.values())), axis=0) <= NEAR_M
    n = int(near.sum())
    if n < MIN_POINTS:
        return DatumCheck(
            declared,
            "not_possible",
            points_used=n,
            message=f"坐标系核对未做：只有 {n} 个点在{ref_zh} {NEAR_M:.0f} m 内（至少需要 "
            f"{MIN_POINTS} 个）/ datum check not possible: only {n} point(s) lie within "
            f"{NEAR_M:.0f} m of the {ref_en} ({MIN_POINTS} needed)",
        )
    used = {r: d[near] for r, d in dist.items()}
    median = {r: round(float(np.median(d)), 1) for r, d in used.items()}
    others = [r for r in READINGS if r != declared]
    shares: dict[str, float] = {}
    better = []
    for r in others:
        wins, share = _clearly_better(used[r], used[declared])
        shares[r] = round(share, 3)
        if wins:
            better.append(r)
    figures_zh = "，".join(f"按 {r} {median[r]:.0f} m" for r in READINGS)
    figures_en = ", ".join(f"as {r} {median[r]:.0f} m" for r in READINGS)
    if better:
        best = min(better, key=lambda r: median[r])
        zh, en, option = _NAMES[best]
        lead_en = (
            "these look like WGS84/CGCS2000 coordinates already"
            if best == "wgs84"
            else (f"these look like {en} coordinates")
        )
        lead_zh = (
            "这些坐标像是已经是WGS84/CGCS2000坐标" if best == "wgs84" else (f"这些坐标像是{zh}坐标")
        )
        message = (
            f"{lead_zh}：按 {best} 读取时离{ref_zh}更近（{n} 个点，距离中位数 "
            f"{median[declared]:.0f} m → {median[best]:.0f} m，{shares[best]:.0%} 的点更近）；"
            f"请用 --source-crs {option} 重新导入 / {lead_en}: read as {best} they sit closer to "
            f"the {ref_en} ({n} points, median distance {median[declared]:.0f} m → "
            f"{median[best]:.0f} m, closer for {shares[best]:.0%}); re-import with --source-crs "
            f"{option}"
        )
        return DatumCheck(declared, "suspect", best, n, median, shares, message)
    if all(_clearly_better(used[declared], used[r])[0] for r in others):
        message = (
            f"坐标系核对：按声明的 {declared} 读取最贴合{ref_zh}（{n} 个点，距离中位数 "
            f"{figures_zh}）/ datum check: the points fit the {ref_en} best as declared "
            f"({declared}; {n} points, median distance {figures_en})"
        )
        return DatumCheck(declared, "fits", declared, n, median, shares, message)
    message = (
        f"坐标系核对无定论：{n} 个点在{ref_zh}附近，距离中位数 {figures_zh}，没有哪种读法明显更贴合"
        f"（要求 {MIN_SHARE:.0%} 的点更近且中位数减半）/ datum check inconclusive: {n} points near "
        f"the {ref_en}, median distance {figures_en}; no reading fits clearly better (needs "
        f"{MIN_SHARE:.0%} of the points closer and half the median distance)"
    )
    return DatumCheck(declared, "inconclusive", None, n, median, shares, message)

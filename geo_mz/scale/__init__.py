"""Province and nation runs, in parts, on Dask.

One job per county/town/province part, proven equal to the whole-area
run, on Dask (a LocalCluster or any scheduler), with GeoPackage or PostGIS run stores.
The jobs (:data:`JOBS`): the 15-minute circle's coverage, capacity-adjusted coverage,
E2SFCA, isochrone rings and gap hexagons; the relief audit and its scenarios (closures,
floods); shelter adequacy and evacuation; boundary QA. ``scale run all`` runs
:data:`ALL_ORDER`.
"""

from geo_mz.scale.jobs import ALL_ORDER, JOB_LAYERS, JOBS, SCENARIO_JOB, two_pass
from geo_mz.scale.outputs import (
    KPI_NAMES,
    OUTPUT_LAYERS,
    gather_outputs,
    part_infos,
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
)
from geo_mz.scale.partition_relief import relief_part, relief_scenario_part
from geo_mz.scale.partition_rings import merge_rings, rings_part
from geo_mz.scale.partition_shelters import (
    evacuation_part,
    gather_adequacy_totals,
    gather_evacuation,
    shelter_adequacy_part,
)
from geo_mz.scale.partition_twopass import TwoPassJob, run_two_pass_in_process
from geo_mz.scale.runner import (
    SCHEDULER_ENV,
    RunResult,
    ScaleError,
    changed_layers,
    city_parts,
    dask_client,
    gather,
    jobs_digests,
    part_code,
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
    "JOB_LAYERS",
    "KPI_NAMES",
    "OUTPUT_LAYERS",
    "SCENARIO_JOB",
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
    "TwoPassJob",
    "boundary_part",
    "changed_layers",
    "city_parts",
    "complete_nodes",
    "coverage_part",
    "dask_client",
    "evacuation_part",
    "frame_schema",
    "gather",
    "gather_adequacy_totals",
    "gather_evacuation",
    "gather_outputs",
    "jobs_digests",
    "make_cut",
    "max_drive_kmh",
    "merge_rings",
    "open_run_store",
    "part_code",
    "part_infos",
    "part_summary",
    "parts_of",
    "points_left_out",
    "proven",
    "province_parts",
    "relief_part",
    "relief_scenario_part",
    "rings_part",
    "run_key",
    "run_kpis",
    "run_part",
    "run_partitioned",
    "run_two_pass_in_process",
    "shelter_adequacy_part",
    "two_pass",
    "write_run_outputs",
]

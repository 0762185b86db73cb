"""Administrative boundaries (行政区域界线) and their joint inspection.

Topology QA of neighbouring units (gaps, overlaps, slivers),
repair, boundary lines between neighbours, boundary markers (界桩) and the joint-inspection
(联检) report.
"""

from geo_mz.boundaries.coverage_repair import (
    Repair,
    repair,
    repair_kpis,
    repaired_layer,
    repairs_layer,
)
from geo_mz.boundaries.inspection import (
    Inspection,
    inspect_lines,
    inspection_kpis,
    issues_layer,
    marker_layer,
)
from geo_mz.boundaries.lines import extract_lines, line_summary, lines_layer, normalise_line_id
from geo_mz.boundaries.linework import fold_destinations, linework_cells, raw_region
from geo_mz.boundaries.markers import MARKER_NUMBER, InspectSettings
from geo_mz.boundaries.topology import (
    QA_DEFAULTS,
    Qa,
    QaSettings,
    enclosed_gaps,
    findings_layer,
    number_findings,
    qa,
    qa_kpis,
)
from geo_mz.boundaries.units import BoundaryError, prepare_units, read_layer_file

__all__ = [
    "MARKER_NUMBER",
    "QA_DEFAULTS",
    "BoundaryError",
    "InspectSettings",
    "Inspection",
    "Qa",
    "QaSettings",
    "Repair",
    "enclosed_gaps",
    "extract_lines",
    "findings_layer",
    "fold_destinations",
    "inspect_lines",
    "inspection_kpis",
    "issues_layer",
    "line_summary",
    "lines_layer",
    "linework_cells",
    "marker_layer",
    "normalise_line_id",
    "number_findings",
    "prepare_units",
    "qa",
    "qa_kpis",
    "raw_region",
    "read_layer_file",
    "repair",
    "repair_kpis",
    "repaired_layer",
    "repairs_layer",
]

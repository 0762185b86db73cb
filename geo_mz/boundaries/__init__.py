"""Administrative boundaries (行政区域界线) and their joint inspection.

Administrative boundaries: topology QA of neighbouring units (gaps, overlaps, slivers),
repair, boundary lines between neighbours, boundary markers (界桩) and the joint-inspection
(联检) report.
"""

from geo_mz.boundaries.lines import (
    MARKER_NUMBER,
    Inspection,
    InspectSettings,
    extract_lines,
    inspect_lines,
    inspection_kpis,
    issues_layer,
    line_summary,
    lines_layer,
    marker_layer,
    normalise_line_id,
)
from geo_mz.boundaries.topology import (
    QA_DEFAULTS,
    BoundaryError,
    Qa,
    QaSettings,
    Repair,
    enclosed_gaps,
    findings_layer,
    number_findings,
    prepare_units,
    qa,
    qa_kpis,
    read_layer_file,
    repair,
    repair_kpis,
    repaired_layer,
    repairs_layer,
)

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
    "inspect_lines",
    "inspection_kpis",
    "issues_layer",
    "line_summary",
    "lines_layer",
    "marker_layer",
    "normalise_line_id",
    "number_findings",
    "prepare_units",
    "qa",
    "qa_kpis",
    "read_layer_file",
    "repair",
    "repair_kpis",
    "repaired_layer",
    "repairs_layer",
]

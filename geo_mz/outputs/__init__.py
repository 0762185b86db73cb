"""What people read: maps, reports and result files.

Folium maps, the HTML report, GeoPackage/Excel result files, and each
analysis' files and maps (elder-care circle, relief, shelters, burial, place names).

Analyses return data; this package writes it. It may import every analysis package, and none of
them imports it.
"""

from geo_mz.outputs.burial import (
    burial_map,
    write_burial_outputs,
)
from geo_mz.outputs.eldercare import (
    circle_map,
    write_circle_outputs,
)
from geo_mz.outputs.files import (
    write_gpkg,
)
from geo_mz.outputs.inventory import (
    headline_kpis,
)
from geo_mz.outputs.map_styles import (
    feature_styles,
)
from geo_mz.outputs.maps import (
    layers_map,
    save_map,
)
from geo_mz.outputs.names import (
    write_names_report,
)
from geo_mz.outputs.relief import (
    audit_layer,
    changes_layer,
    closures_layer,
    detour_layer,
    overlay_layers,
    relief_map,
    routes_layer,
    scenario_kpis,
    worst_per_point,
    write_plan_outputs,
    write_relief_outputs,
)
from geo_mz.outputs.report import (
    MAX_PROBLEMS_SHOWN,
    render_report,
    write_report,
)
from geo_mz.outputs.shelters import (
    shelter_map,
    write_shelter_outputs,
)

__all__ = [
    "MAX_PROBLEMS_SHOWN",
    "audit_layer",
    "burial_map",
    "changes_layer",
    "circle_map",
    "closures_layer",
    "detour_layer",
    "feature_styles",
    "headline_kpis",
    "layers_map",
    "overlay_layers",
    "relief_map",
    "render_report",
    "routes_layer",
    "save_map",
    "scenario_kpis",
    "shelter_map",
    "worst_per_point",
    "write_burial_outputs",
    "write_circle_outputs",
    "write_gpkg",
    "write_names_report",
    "write_plan_outputs",
    "write_relief_outputs",
    "write_report",
    "write_shelter_outputs",
]

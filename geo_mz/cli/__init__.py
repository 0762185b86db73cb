"""The ``geo-mz`` command: one module per command group, over the library's public API."""

from geo_mz.cli.app import main

__all__ = ["main"]

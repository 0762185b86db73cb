"""geo_mz: GIS for civil-affairs bureaus (民政局).

Importing the package has no side effects: it reads no files and starts nothing.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]

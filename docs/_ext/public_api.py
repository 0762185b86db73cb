"""Sphinx directive ``public-api``: a summary table of what a package's ``__all__`` exports.

The API pages list no names by hand: ``.. public-api:: geo_mz.eldercare`` imports the package
and writes an ``autosummary`` table (no stub pages) of its ``__all__``, in that order; the
objects themselves are documented on the same page by ``.. automodule:: ... :members:``, which
also follows ``__all__``. So a page changes when ``__all__`` changes, and only then.
"""

from __future__ import annotations

import importlib

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective


class PublicApi(SphinxDirective):
    """``.. public-api:: package``: autosummary of ``package.__all__``."""

    required_arguments = 1
    has_content = False

    def run(self) -> list[nodes.Node]:
        """Import the package and parse an autosummary of its ``__all__``."""
        name = self.arguments[0]
        try:
            module = importlib.import_module(name)
        except Exception as exc:  # reported as a build error with the page's location
            raise self.error(f"cannot import {name}: {exc!r}") from exc
        exported = getattr(module, "__all__", None)
        if not exported:
            raise self.error(f"{name} has no __all__ (or it is empty): nothing to list")
        lines = [f".. currentmodule:: {name}", "", ".. autosummary::", ""]
        lines += [f"   {item}" for item in exported if item != "__version__"]
        container = nodes.container()
        self.state.nested_parse(StringList(lines, source=f"<public-api {name}>"), 0, container)
        return container.children


def setup(app):  # noqa: D103
    app.add_directive("public-api", PublicApi)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

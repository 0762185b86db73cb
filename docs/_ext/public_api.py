"""Sphinx extension for the API pages: each page follows its package's ``__all__``.

``.. public-api:: geo_mz.eldercare`` (after ``.. automodule:: geo_mz.eldercare``, which gives
the package's docstring) imports the package and writes, in the order of ``__all__``:

* a summary table (``autosummary``, no stub pages) of every exported name;
* the reference: ``autoclass`` (with members), ``autoexception``, ``autofunction`` or
  ``autodata`` for each name. ``automodule :members:`` cannot do this alone: it skips the
  constants a package re-exports, because their ``#:`` comment is in the module that defines
  them, so here a constant without a docstring gets that comment;
* the list of the package's modules with their one-line summary, which are also the targets of
  ``:mod:`` references to them (their contents are documented under the package's name only, so
  no object is described twice).

A page changes when ``__all__`` changes, and only then.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.pycode import ModuleAnalyzer, PycodeError
from sphinx.util.docutils import SphinxDirective

PACKAGE = "geo_mz"
#: Constants whose ``repr`` is longer are shown without their value.
MAX_VALUE_CHARS = 400


def _directive_for(obj: Any) -> str:
    """Choose the autodoc directive that documents ``obj``."""
    if inspect.isclass(obj):
        return "autoexception" if issubclass(obj, BaseException) else "autoclass"
    if inspect.isroutine(obj):
        return "autofunction"
    return "autodata"


def _summary_line(module: Any) -> str:
    """Return the first line of a module's docstring."""
    doc = inspect.getdoc(module) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


class PublicApi(SphinxDirective):
    """``.. public-api:: package``: summary, reference and modules of ``package.__all__``."""

    required_arguments = 1
    has_content = False

    def run(self) -> list[nodes.Node]:
        """Import the package and parse the rST that documents its ``__all__``."""
        name = self.arguments[0]
        try:
            module = importlib.import_module(name)
        except Exception as exc:  # reported as a build error with the page's location
            raise self.error(f"cannot import {name}: {exc!r}") from exc
        exported = [n for n in getattr(module, "__all__", None) or () if n != "__version__"]
        if not exported:
            raise self.error(f"{name} has no __all__ (or it is empty): nothing to document")
        lines = [f".. currentmodule:: {name}", "", ".. autosummary::", ""]
        lines += [f"   {item}" for item in exported]
        lines += ["", ".. rubric:: 参考 (Reference)", ""]
        for item in exported:
            directive = _directive_for(getattr(module, item))
            lines += [f".. {directive}:: {item}"]
            if directive in {"autoclass", "autoexception"}:
                lines += ["   :members:"]
            elif directive == "autodata" and len(repr(getattr(module, item))) > MAX_VALUE_CHARS:
                lines += ["   :no-value:"]  # a long table: its comment describes it
            lines += [""]
        lines += self._modules(module)
        container = nodes.container()
        self.state.nested_parse(StringList(lines, source=f"<public-api {name}>"), 0, container)
        return container.children

    def _modules(self, package: Any) -> list[str]:
        """List the package's public modules; each is a ``py:module`` target."""
        if not hasattr(package, "__path__"):
            return []
        exported = set(getattr(package, "__all__", ()))
        names = sorted(
            f"{package.__name__}.{info.name}"
            for info in pkgutil.iter_modules(package.__path__)
            # a module named like an exported object (geo_mz.cli.main) is not a target: the
            # object is
            if not info.name.startswith("_") and info.name not in exported
        )
        if not names:
            return []
        lines = [
            ".. rubric:: 模块 (Modules)",
            "",
            f"The modules behind ``{package.__name__}``; their public names are documented "
            "above, under the package's name.",
            "",
        ]
        for modname in names:
            summary = _summary_line(importlib.import_module(modname))
            # the summary's references resolve from the package, where its names are documented
            lines += [f".. py:module:: {modname}", "   :no-index-entry:", ""]
            lines += [f".. currentmodule:: {package.__name__}", ""]
            lines += [f"``{modname}``", f"   {summary or '(no docstring)'}", ""]
        return lines


def _comment_of(obj: Any, attr: str) -> list[str]:
    """Find the ``#:`` comment of ``attr`` in the ``geo_mz`` module that holds ``obj``."""
    for modname, module in sorted(sys.modules.items()):
        if not (modname == PACKAGE or modname.startswith(PACKAGE + ".")):
            continue
        if getattr(module, attr, None) is not obj:
            continue
        try:
            docs = ModuleAnalyzer.for_module(modname).find_attr_docs()
        except PycodeError:
            continue
        if ("", attr) in docs:
            return list(docs["", attr])
    return []


def constant_comment(
    app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]
) -> None:
    """Give a re-exported constant the ``#:`` comment of its defining module.

    Without it autodoc falls back to the docstring of the value's type ("Built-in immutable
    sequence." for a tuple); that is dropped when there is no comment either.
    """
    if what != "data":
        return
    module, _, attr = name.rpartition(".")
    if not (module == PACKAGE or module.startswith(PACKAGE + ".")):
        return
    comment = _comment_of(obj, attr)
    if comment:
        lines[:] = comment
    elif type(obj).__module__ == "builtins" or "\n".join(lines).strip() == (
        inspect.getdoc(type(obj)) or ""
    ):
        lines[:] = []


def factory_default(
    app: Any, what: str, name: str, obj: Any, options: Any, signature: str | None, ret: str | None
) -> tuple[str | None, str | None] | None:
    """Show a dataclass field's ``default_factory`` default as ``...``.

    ``inspect.signature`` renders it as ``<factory>``, which is not Python, so Sphinx falls back
    to splitting the signature at commas and makes references of fragments (``tuple[str``).
    """
    if signature and "<factory>" in signature:
        return signature.replace("=<factory>", "=...").replace(" = <factory>", " = ..."), ret
    return None


def setup(app: Any) -> dict[str, Any]:  # noqa: D103
    app.add_directive("public-api", PublicApi)
    app.connect("autodoc-process-signature", factory_default, priority=400)  # before numpydoc
    app.connect("autodoc-process-docstring", constant_comment, priority=400)  # before numpydoc
    return {"parallel_read_safe": True, "parallel_write_safe": True}

"""The package layout holds: no private names across modules, no import cycles, one-way layers.

The layering itself is an import-linter contract (``[tool.importlinter]`` in pyproject.toml,
run by ``make lint``); these tests check what import-linter does not: that no module imports
another module's underscore names, that package-internal modules (``_common.py``) are imported
only from inside their package, that there is no cycle between any two modules, and that every
package's ``__all__`` names exist.
"""

from __future__ import annotations

import ast
import importlib
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "geo_mz").rglob("*.py")) + sorted((ROOT / "webmap").rglob("*.py"))


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path):
    """(line, imported module, imported name or None) of every absolute or relative import."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    me = _module_name(path).split(".")
    package = me if path.name == "__init__.py" else me[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                yield node.lineno, base, alias.name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, None


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_no_module_imports_another_modules_private_names():
    bad = []
    for path in SOURCES:
        me = _module_name(path)
        for line, module, name in _imports(path):
            if not module.startswith(("geo_mz", "webmap")) or name is None:
                continue
            if _is_private(name) and not _is_module(f"{module}.{name}") and module != me:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {name} from {module}")
    assert not bad, "\n".join(bad)


def _is_module(dotted: str) -> bool:
    path = ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def test_package_internal_modules_are_imported_only_inside_their_package():
    bad = []
    for path in SOURCES:
        me = _module_name(path)
        for line, module, name in _imports(path):
            full = module if name is None else f"{module}.{name}"
            parts = full.split(".")
            for i, part in enumerate(parts):
                if _is_private(part) and parts[0] in ("geo_mz", "webmap"):
                    owner = ".".join(parts[:i])
                    if not (me == owner or me.startswith(owner + ".")):
                        bad.append(f"{path.relative_to(ROOT)}:{line} imports {full}")
                    break
    assert not bad, "\n".join(bad)


def test_no_import_cycles_between_modules():
    graph = grimp.build_graph("geo_mz", "webmap", cache_dir=None)
    g = nx.DiGraph()
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            # a package's __init__ re-exporting its modules is not a cycle of the code itself
            if not imported.startswith(module + "."):
                g.add_edge(module, imported)
    cycles = [sorted(c) for c in nx.strongly_connected_components(g) if len(c) > 1]
    assert not cycles, f"import cycles: {cycles}"


PACKAGES = [
    "geo_mz.core",
    "geo_mz.network",
    "geo_mz.eldercare",
    "geo_mz.relief",
    "geo_mz.burial",
    "geo_mz.boundaries",
    "geo_mz.names",
    "geo_mz.outputs",
    "geo_mz.scale",
    "geo_mz.datasets",
    "geo_mz.cli",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_every_package_exports_its_public_api(name: str):
    package = importlib.import_module(name)
    assert package.__doc__ and "TODO" not in package.__doc__
    exported = package.__all__
    assert exported == sorted(set(exported), key=exported.index)  # no repeats
    missing = [n for n in exported if not hasattr(package, n)]
    assert not missing, f"{name}.__all__ names what it does not have: {missing}"
    assert not [n for n in exported if _is_private(n)]


@pytest.mark.parametrize("name", PACKAGES)
def test_no_exported_name_hides_a_module_of_the_package(name: str):
    """``from geo_mz.relief import drive_audit`` must give the module, never a function."""
    import pkgutil
    import types

    package = importlib.import_module(name)
    for sub in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{name}.{sub.name}")
        assert isinstance(getattr(package, sub.name), types.ModuleType), (
            f"{name}.{sub.name} is shadowed by an exported name of the same name"
        )


def test_importing_the_library_starts_nothing_heavy():
    code = (
        "import sys, geo_mz, geo_mz.core, geo_mz.network, geo_mz.eldercare, geo_mz.relief;"
        "heavy = ('psycopg', 'flask', 'dask', 'ortools', 'folium');"
        "heavy = [m for m in heavy if m in sys.modules];"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_the_layer_contract_is_kept():
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert exe, "import-linter is part of the dev extra"
    run = subprocess.run([exe, "--no-cache"], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stdout[-3000:]

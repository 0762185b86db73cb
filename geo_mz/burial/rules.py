"""Rules of tree-burial planning: read and check ``layers/rules/burial_rules.toml``.

:func:`load_rules` checks every table and key of the rules file against a schema and returns
:class:`BurialRules` (grid, slope, jurisdiction, exclusions, score, candidates, capacity,
targets); an error names the file and the key.  The rules drive
:mod:`geo_mz.burial.suitability` and :mod:`geo_mz.burial.capacity`.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geo_mz.core.catalog import default_catalog_dir
from geo_mz.core.errors import GeoMzError

__all__ = ["BurialRules", "BurialRulesError", "ExclusionRule", "default_rules_path", "load_rules"]


class BurialRulesError(GeoMzError, ValueError):
    """The burial rules file is malformed; the message names the file and the key."""


@dataclass(frozen=True)
class ExclusionRule:
    """One hard exclusion: features of a layer (selected by field values or density) + buffer.

    Attributes
    ----------
    key, zh, en
        Identifier and titles.
    layer
        Workspace layer the features come from.
    field, values
        Select features whose ``field`` is one of ``values`` (all features when ``field`` is None).
    buffer_m
        Cells within this distance of a feature are excluded (0: only cells inside it).
    source
        Where the rule comes from (STANDARDS.md tag or "local choice").
    min_density_per_km2, cell_size_field
        Population cells instead: ``field`` / cell area ≥ this density.
    """

    key: str
    zh: str
    en: str
    layer: str
    field: str | None
    values: tuple[str, ...]
    buffer_m: float
    source: str
    min_density_per_km2: float | None = None
    cell_size_field: str | None = None


@dataclass(frozen=True)
class BurialRules:
    """Everything :mod:`geo_mz.burial` uses, as read from ``burial_rules.toml`` (see that file).

    Sections are kept as read (validated) mappings: ``grid``, ``slope``, ``score``,
    ``road_access``, ``settlement``, ``candidates``, ``capacity``, ``targets``; ``weights`` are
    normalised to sum 1.
    """

    path: str
    grid: Mapping[str, Any]
    slope: Mapping[str, Any]
    exclude_outside: bool
    exclusions: tuple[ExclusionRule, ...]
    weights: Mapping[str, float]
    road_access: Mapping[str, Any]
    settlement: Mapping[str, Any]
    candidates: Mapping[str, Any]
    capacity: Mapping[str, Any]
    targets: Mapping[str, Any]

    def rule(self, key: str) -> ExclusionRule:
        """Return the exclusion rule ``key``."""
        for r in self.exclusions:
            if r.key == key:
                return r
        raise KeyError(key)


def default_rules_path() -> Path:
    """Return the shipped rules file, ``layers/rules/burial_rules.toml``."""
    return default_catalog_dir() / "rules" / "burial_rules.toml"


#: Built-in exclusions, applied before the rules file's: no DEM data, outside, too steep.
_BUILTIN = ("no_dem", "outside", "slope")
_NUM, _TEXT, _TEXTS = "a number", "a non-empty string", "a non-empty list of strings"
_FLAG = "true or false"
_POS = "positive"  # a low bound meaning "> 0"
#: Schema of the rules file: section to key to (kind, low, high); low/high bound numbers
#: (inclusive; _POS: > 0); "kind" may instead be a tuple of allowed words. All keys required.
_SCHEMA: dict[str, dict[str, tuple[Any, Any, Any]]] = {
    "grid": {"resolution_m": (_NUM, _POS, None),
             "resampling": (("bilinear", "cubic", "nearest"), None, None),
             "source": (_TEXT, None, None)},
    "slope": {"max_deg": (_NUM, _POS, 90), "preferred_min_deg": (_NUM, 0, 90),
              "preferred_max_deg": (_NUM, 0, 90), "flat_score": (_NUM, 0, 1),
              "method": (("horn", "central"), None, None), "source": (_TEXT, None, None)},
    "jurisdiction": {"exclude_outside": (_FLAG, None, None), "source": (_TEXT, None, None)},
    "score": {"weights": (dict, None, None), "road_access": (dict, None, None),
              "settlement": (dict, None, None), "source": (_TEXT, None, None)},
    "score.weights": {"slope": (_NUM, 0, None), "road_access": (_NUM, 0, None),
                      "settlement": (_NUM, 0, None)},
    "score.road_access": {"layer": (_TEXT, None, None), "field": (_TEXT, None, None),
                          "values": (_TEXTS, None, None), "full_m": (_NUM, 0, None),
                          "zero_m": (_NUM, 0, None), "source": (_TEXT, None, None)},
    "score.settlement": {"rules": (_TEXTS, None, None), "zero_m": (_NUM, 0, None),
                         "full_m": (_NUM, 0, None), "source": (_TEXT, None, None)},
    "candidates": {"min_area_m2": (_NUM, 0, None), "min_score": (_NUM, 0, 1),
                   "source": (_TEXT, None, None)},
    "capacity": {"tree_plot_area_m2": (_NUM, _POS, None), "tree_usable_share": (_NUM, _POS, 1),
                 "tree_source": (_TEXT, None, None), "hall_niches_per_m2": (_NUM, _POS, None),
                 "hall_usable_share": (_NUM, _POS, 1), "hall_floors": (_NUM, 1, None),
                 "hall_source": (_TEXT, None, None), "prefer_recorded": (_FLAG, None, None)},
    "targets": {"plan_year": (_NUM, 1900, 2200), "tree_burial_sites": (_NUM, 0, None),
                "memorial_halls": (_NUM, 0, None), "source": (_TEXT, None, None)},
    "exclusions": {"key": (_TEXT, None, None), "zh": (_TEXT, None, None),
                   "en": (_TEXT, None, None), "layer": (_TEXT, None, None),
                   "buffer_m": (_NUM, 0, None), "source": (_TEXT, None, None)},
}  # fmt: skip
_OPTIONAL = {
    "exclusions": {"field": (_TEXT, None, None), "values": (_TEXTS, None, None),
                   "min_density_per_km2": (_NUM, 0, None), "cell_size_field": (_TEXT, None, None)},
    "targets": {"towns": (dict, None, None)},
}  # fmt: skip


def _fail(file: str, where: str, msg: str) -> BurialRulesError:
    return BurialRulesError(f"{file}: {where}: {msg}")


def _check_value(file: str, where: str, v: Any, kind: Any, lo: Any, hi: Any) -> Any:
    """Check one value against its schema entry; the error names ``where`` (table and key)."""
    if kind is dict:
        ok = isinstance(v, dict)
    elif kind == _NUM:
        ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        low_bad = ok and lo is not None and (v <= 0 if lo == _POS else v < lo)
        if low_bad or (ok and hi is not None and v > hi):
            bounds = [] if lo is None else ["> 0" if lo == _POS else f"≥ {lo:g}"]
            bounds += [] if hi is None else [f"≤ {hi:g}"]
            raise _fail(file, where, f"must be a number {' and '.join(bounds)}, got {v!r}")
    elif kind == _TEXT:
        ok = isinstance(v, str) and bool(v.strip())
    elif kind == _TEXTS:
        ok = isinstance(v, list) and bool(v) and all(isinstance(x, str) and x for x in v)
    elif kind == _FLAG:
        ok = isinstance(v, bool)
    else:  # a tuple of allowed words
        ok = v in kind
        kind = " or ".join(kind)
    if not ok:
        raise _fail(file, where, f"must be {'a table' if kind is dict else kind}, got {v!r}")
    return tuple(v) if kind == _TEXTS else v


def _section(file: str, raw: Any, name: str, label: str | None = None) -> dict[str, Any]:
    """Check a table against ``_SCHEMA[name]`` (+ optional keys): unknown and missing keys fail."""
    label = label or f"[{name}]"
    if not isinstance(raw, dict):
        raise _fail(file, label, "must be a table")
    known = {**_SCHEMA[name], **_OPTIONAL.get(name, {})}
    for key in raw:
        if key not in known:
            raise _fail(file, f"{label} {key}", f"unknown key (known: {', '.join(known)})")
    for key in _SCHEMA[name]:
        if key not in raw:
            raise _fail(file, f"{label} {key}", "missing")
    return {k: _check_value(file, f"{label} {k}", v, *known[k]) for k, v in raw.items()}


def _exclusion(file: str, raw: Any, i: int, seen: set[str]) -> ExclusionRule:
    label = f"[[exclusions]] #{i + 1}"
    if isinstance(raw, dict) and isinstance(raw.get("key"), str):
        label += f" ('{raw['key']}')"
    r = _section(file, raw, "exclusions", label)
    if r["key"] in seen or r["key"] in _BUILTIN:
        raise _fail(file, f"{label} key", f"used twice or reserved ({', '.join(_BUILTIN)})")
    seen.add(r["key"])
    density = r.get("min_density_per_km2")
    if ("field" in r) != ("values" in r or density is not None) or (
        "values" in r and density is not None
    ):
        raise _fail(
            file,
            f"{label} field",
            "give field + values, or field + min_density_per_km2, or neither (all features)",
        )
    return ExclusionRule(
        key=r["key"], zh=r["zh"], en=r["en"], layer=r["layer"], field=r.get("field"),
        values=r.get("values", ()), buffer_m=float(r["buffer_m"]), source=r["source"],
        min_density_per_km2=None if density is None else float(density),
        cell_size_field=r.get("cell_size_field"),
    )  # fmt: skip


def load_rules(path: str | Path | None = None) -> BurialRules:
    """Read and check the burial rules (suitability, capacity, targets).

    Parameters
    ----------
    path
        A rules TOML file; the shipped ``layers/rules/burial_rules.toml`` when None.

    Returns
    -------
    BurialRules

    Raises
    ------
    BurialRulesError
        If the file cannot be read, is not TOML, lacks a key, has an unknown key or a value of
        the wrong type or range; the message names the file and the key, e.g.
        ``burial_rules.toml: [slope] max_deg: must be a number, got 'steep'``.
    """
    p = Path(path) if path is not None else default_rules_path()
    f = p.name
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise BurialRulesError(f"{p}: cannot read the burial rules: {exc}") from exc
    tops = ("version", "grid", "slope", "jurisdiction", "exclusions", "score", "candidates",
            "capacity", "targets")  # fmt: skip
    for key in raw:
        if key not in tops:
            raise _fail(f, key, f"unknown table or key (known: {', '.join(tops)})")
    for key in tops[1:]:
        if key not in raw:
            raise _fail(f, f"[{key}]", "missing")
    sec = {k: _section(f, raw[k], k) for k in tops[1:] if k != "exclusions"}
    for k in ("weights", "road_access", "settlement"):
        sec[f"score.{k}"] = _section(f, sec["score"][k], f"score.{k}")
    slope, road, settle = sec["slope"], sec["score.road_access"], sec["score.settlement"]
    if not slope["preferred_min_deg"] <= slope["preferred_max_deg"] <= slope["max_deg"]:
        raise _fail(f, "[slope] preferred_max_deg", "need preferred_min ≤ preferred_max ≤ max")
    if not road["full_m"] < road["zero_m"]:
        raise _fail(f, "[score.road_access] zero_m", "must be greater than full_m")
    if not settle["zero_m"] < settle["full_m"]:
        raise _fail(f, "[score.settlement] full_m", "must be greater than zero_m")
    weights = sec["score.weights"]
    if sum(weights.values()) <= 0:
        raise _fail(f, "[score.weights]", "at least one weight must be > 0")
    if not isinstance(raw["exclusions"], list):
        raise _fail(f, "exclusions", "must be an array of tables ([[exclusions]])")
    seen: set[str] = set()
    exclusions = tuple(_exclusion(f, e, i, seen) for i, e in enumerate(raw["exclusions"]))
    unknown = [k for k in settle["rules"] if k not in seen]
    if unknown:
        raise _fail(f, "[score.settlement] rules", f"{unknown} are not [[exclusions]] keys")
    targets = dict(sec["targets"])
    towns = {}
    for code, tt in targets.pop("towns", {}).items():
        label = f"[targets.towns.{code}]"
        for key, v in tt.items() if isinstance(tt, dict) else [("", tt)]:
            if key not in ("tree_burial_sites", "memorial_halls"):
                raise _fail(
                    f, f"{label} {key}", "unknown key (known: tree_burial_sites, memorial_halls)"
                )
            _check_value(f, f"{label} {key}", v, _NUM, 0, None)
        towns[str(code)] = {k: int(v) for k, v in tt.items()}
    for key in ("plan_year", "tree_burial_sites", "memorial_halls"):
        targets[key] = int(targets[key])
    targets["towns"] = towns
    return BurialRules(
        path=str(p), grid=sec["grid"], slope=slope,
        exclude_outside=sec["jurisdiction"]["exclude_outside"], exclusions=exclusions,
        weights={k: v / sum(weights.values()) for k, v in weights.items()},
        road_access=road, settlement=settle, candidates=sec["candidates"],
        capacity=sec["capacity"], targets=targets,
    )  # fmt: skip

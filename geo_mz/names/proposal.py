"""Checking a proposed new place name before approval (:func:`geo_mz.names.check_proposal`).

A proposal is checked against the existing names in the scope of its level (villages: the town
and, as a warning, the county; towns: the county; counties and cities: the whole country) for
the same 专名 or the same pinyin, against the per-name rules (restricted words, odd characters,
missing 通名; shared with :func:`geo_mz.names.check_names`) and, given a point and the
``place_names`` layer, against the place names nearby. The verdict is a
:class:`ProposalResult` holding one :class:`Reason` per finding.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from geo_mz.names._name_checks import character_findings, structure_findings, term_findings
from geo_mz.names.gazetteer import LEVELS, GazetteerIndex, names_pinyin, subtree
from geo_mz.names.rules import (
    SCOPE_ZH,
    NamesError,
    ParsedName,
    Rules,
    load_rules,
    parse_parts,
    specific_pinyin,
)

if TYPE_CHECKING:
    import geopandas as gpd

__all__ = ["ProposalResult", "Reason", "check_proposal"]


@dataclass(frozen=True)
class Reason:
    """Why a proposed name is refused or needs attention.

    Attributes
    ----------
    check
        Key from :data:`CHECKS`, or ``"nearby"`` for a name found near the given point.
    severity
        ``"refuse"`` (blocks approval) or ``"warn"`` (reported, does not block).
    message
        What was found, naming the existing places with their full chain.
    rule, source
        The rule and where it comes from.
    related_codes, related_names
        The existing places concerned.
    """

    check: str
    severity: Literal["refuse", "warn"]
    message: str
    rule: str
    source: str
    related_codes: tuple[str, ...] = ()
    related_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProposalResult:
    """Verdict on a proposed name (:func:`check_proposal`).

    Attributes
    ----------
    name, level, parent_code
        The proposal.
    parent_full_name
        The parent's full chain (``"广东省 江门市 蓬江区 棠下镇"``).
    parsed
        The proposal split into 专名/通名.
    reasons
        Every finding; ``ok`` is False when one of them is ``"refuse"``.
    """

    name: str
    level: str
    parent_code: str
    parent_full_name: str
    parsed: ParsedName
    reasons: tuple[Reason, ...]

    @property
    def ok(self) -> bool:
        """True when no reason refuses the name."""
        return not any(r.severity == "refuse" for r in self.reasons)

    def to_frame(self) -> pd.DataFrame:
        """Return the reasons as a table."""
        return pd.DataFrame(
            [
                {
                    "check": r.check,
                    "severity": r.severity,
                    "message": r.message,
                    "rule": r.rule,
                    "source": r.source,
                    "related_codes": ";".join(r.related_codes),
                }
                for r in self.reasons
            ],
            columns=["check", "severity", "message", "rule", "source", "related_codes"],
        )


def _scope_table(
    gazetteer: pd.DataFrame | GazetteerIndex, prefix: str, levels: Sequence[str]
) -> pd.DataFrame:
    if isinstance(gazetteer, GazetteerIndex):
        return subtree(gazetteer, prefix, levels)
    g = gazetteer
    sub = g[g["code"].astype(str).str.startswith(prefix) & g["level"].isin(list(levels))]
    return sub.reset_index(drop=True)


def _unit(gazetteer: pd.DataFrame | GazetteerIndex, code: str) -> Mapping[str, Any] | None:
    sub = _scope_table(gazetteer, code, LEVELS)
    sub = sub[sub["code"] == code]
    if sub.empty:
        return None
    row = sub.iloc[0].to_dict()
    if "full_name" not in row:
        row["full_name"] = row["name"]
    return row


def check_proposal(
    name: str,
    level: str,
    parent_code: str,
    gazetteer: pd.DataFrame | GazetteerIndex,
    *,
    point: Any = None,
    place_names: gpd.GeoDataFrame | None = None,
    radius_m: float = 1000.0,
    rules: Rules | None = None,
) -> ProposalResult:
    """Check a proposed new name before approval.

    The proposal is refused when, within the scope of its level (villages: the town; towns:
    the county; counties and cities: the whole country), an existing unit of the same class has
    the same 专名 (duplicate) or the same pinyin (homophone); when it uses a restricted word
    (大/洋/怪 lists), a traditional, rare or non-Han character, a number-only 专名, or lacks the
    通名 of its level; and, given ``point`` and ``place_names``, when a place name within
    ``radius_m`` has the same name.  A same-name village elsewhere in the county and a
    same-sound name nearby are warnings.

    Parameters
    ----------
    name : str
        Proposed name, e.g. ``"新安村"``.
    level : str
        Level of the new unit: ``"village"``, ``"town"``, ``"county"`` or ``"city"``.
    parent_code : str
        Code of the unit it will belong to (a town for a village, a county for a town ...).
    gazetteer : pandas.DataFrame or GazetteerIndex
        Existing names: :func:`geo_mz.names.load_index` (fast) or a table with ``code``,
        ``name``, ``level`` (and ``full_name``).
    point : shapely Point or (lon, lat), optional
        Where the place is (EPSG:4490/4326).
    place_names : geopandas.GeoDataFrame, optional
        Point place names (``name`` column; the ``place_names`` layer) to compare nearby.
    radius_m : float, default 1000
        Radius for ``place_names``.
    rules : Rules, optional
        Default :func:`load_rules`.

    Returns
    -------
    ProposalResult

    Raises
    ------
    NamesError
        If the name is empty, the level unknown or the parent missing or of the wrong level.
    """
    rules = rules or load_rules()
    name = unicodedata.normalize("NFC", str(name)).strip()
    if not name:
        raise NamesError("the proposed name is empty")
    if level not in LEVELS or level == "province":
        raise NamesError(f"level must be one of {LEVELS[1:]}, not {level!r}")
    want_parent = LEVELS[LEVELS.index(level) - 1]
    parent = _unit(gazetteer, str(parent_code))
    if parent is None:
        raise NamesError(f"parent code {parent_code} is not in the gazetteer")
    if parent["level"] != want_parent:
        raise NamesError(
            f"a {level} belongs to a {want_parent}; {parent_code} ({parent['name']}) is a "
            f"{parent['level']}"
        )
    parsed = parse_parts(name, level, rules)
    name_reading = names_pinyin([name], [str(parent_code)])[0]
    reading = specific_pinyin([name], [parsed.specific], [name_reading])[0]
    reasons: list[Reason] = []
    chain = f"{parent['full_name']} {name}"

    # scopes: (table, refuse?, scope label)
    if level == "village":
        scopes = [(str(parent_code), "town", "refuse"), (str(parent_code)[:6], "county", "warn")]
        levels_: tuple[str, ...] = ("village",)
    elif level == "town":
        scopes = [(str(parent_code), "county", "refuse")]
        levels_ = ("town",)
    else:
        scopes = [("", "national", "refuse")]
        levels_ = ("city", "county")
    seen: set[str] = set()
    for prefix, scope, severity in scopes:
        existing = _scope_table(gazetteer, prefix, levels_)
        existing = existing[~existing["name"].isin(rules.placeholders)]
        existing = existing[~existing["code"].isin(seen)]
        if existing.empty:
            continue
        parts = [
            parse_parts(n, lv, rules)
            for n, lv in zip(existing["name"], existing["level"], strict=True)
        ]
        spec = np.array([p.specific for p in parts], dtype=object)
        cat = np.array([p.category for p in parts], dtype=object)
        same_class = cat == parsed.category
        dup = same_class & (spec == parsed.specific)
        py = (
            existing["pinyin"]
            if "pinyin" in existing
            else names_pinyin(existing["name"], existing["code"])
        )
        sounds = np.array(specific_pinyin(existing["name"], spec.tolist(), py), dtype=object)
        hom = same_class & (sounds == reading) & (spec != parsed.specific) & bool(reading)
        full = existing["full_name"] if "full_name" in existing else existing["name"]
        for mask, check in ((dup, "duplicate"), (hom, "homophone")):
            if not mask.any():
                continue
            hit = existing[mask]
            codes = tuple(hit["code"])
            names_ = tuple(full[mask])
            seen.update(codes)
            where = SCOPE_ZH[scope]
            if check == "duplicate":
                msg = f"{where}已有同名(专名“{parsed.specific}”)地名: " + "；".join(
                    f"{n} ({c})" for c, n in zip(codes, names_, strict=True)
                )
            else:
                msg = f"{where}已有同音(“{reading}”)地名: " + "；".join(
                    f"{n} ({c})" for c, n in zip(codes, names_, strict=True)
                )
            spec_ = rules.checks[check]
            reasons.append(
                Reason(check, severity, msg, spec_.rule, spec_.source, codes, names_)  # type: ignore[arg-type]
            )

    row = {
        "code": "",
        "name": name,
        "full_name": chain,
        "level": level,
        "county_code": None,
        "county_name": None,
        "specific": parsed.specific,
        "generic": parsed.generic,
        "committee": parsed.committee,
        "category": parsed.category,
        "kind": parsed.kind,
        "pinyin": name_reading,
        "specific_pinyin": reading,
        "town_code": None,
    }
    one = pd.DataFrame([row])
    one["code"] = str(parent_code) + "?"
    flags = np.ones(1, dtype=bool)
    found = term_findings(one, rules, flags) + character_findings(one, rules, flags)
    found += [f for f in structure_findings(one, rules, flags) if f["check"] != "code_type"]
    for f in found:
        reasons.append(Reason(f["check"], "refuse", f["detail"], f["rule"], f["source"]))

    if point is not None and place_names is not None and len(place_names):
        reasons += _nearby(
            parsed, reading, name, level, point, place_names, radius_m, rules, str(parent_code)
        )
    return ProposalResult(
        name, level, str(parent_code), str(parent["full_name"]), parsed, tuple(reasons)
    )


def _nearby(
    parsed: ParsedName,
    reading: str,
    name: str,
    level: str,
    point: Any,
    place_names: gpd.GeoDataFrame,
    radius_m: float,
    rules: Rules,
    region: str,
) -> list[Reason]:
    import geopandas as gpd
    from shapely.geometry import Point

    from geo_mz.core.projection import gk_zone_crs

    if not isinstance(point, Point):
        point = Point(float(point[0]), float(point[1]))
    crs = gk_zone_crs(point.x)
    here = gpd.GeoSeries([point], crs="EPSG:4490").to_crs(crs).iloc[0]
    gdf = place_names if place_names.crs is not None else place_names.set_crs("EPSG:4490")
    near = gdf.to_crs(crs)
    dist = near.geometry.distance(here)
    near = gdf[(dist <= radius_m).to_numpy()].assign(_d=dist[dist <= radius_m].to_numpy())
    if near.empty:
        return []
    others = [parse_parts(str(n), level, rules) for n in near["name"]]
    spec = np.array([p.specific for p in others], dtype=object)
    sounds = np.array(names_pinyin(spec.tolist(), [region] * len(spec)), dtype=object)
    same = (near["name"].astype(str).to_numpy() == name) | (spec == parsed.specific)
    homo = ~same & (sounds == reading) & bool(reading)
    out = []
    id_col = "name_id" if "name_id" in near else None
    for mask, severity, what in ((same, "refuse", "同名"), (homo, "warn", "同音")):
        if not mask.any():
            continue
        hit = near[mask]
        codes = tuple(str(v) for v in (hit[id_col] if id_col else hit.index))
        names_ = tuple(str(v) for v in hit["name"])
        msg = f"{radius_m:g} 米内已有{what}地名: " + "；".join(
            f"{n} ({d:.0f} 米)" for n, d in zip(names_, hit["_d"], strict=True)
        )
        spec_ = rules.checks["duplicate" if what == "同名" else "homophone"]
        out.append(
            Reason("nearby", severity, msg, spec_.rule, spec_.source, codes, names_)  # type: ignore[arg-type]
        )
    return out
